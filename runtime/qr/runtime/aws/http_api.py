"""API Gateway HTTP API (payload format 2.0) events <-> the ASGI app ``qr dev`` serves.

A small adapter of our own rather than Mangum: the app is always ours, only one event format is
needed, and the adapter is ~150 lines with nothing to configure. ``handle(app, event, ...)``:

1. builds an ASGI ``http`` scope from the event: ``rawPath`` (percent-encoded, as the router
   wants it) and its decoded ``path``, ``rawQueryString`` (repeated keys kept), headers (API
   Gateway joins repeated headers with commas, which HTTP allows for every header but
   ``Set-Cookie``), the ``cookies`` array as one ``Cookie`` header, host, client address, and
   ``scope["state"]`` with the Lambda request id and the deadline (from the function's remaining
   time), which the app uses for ``request_id`` and its timeout;
2. feeds the body (base64-decoded when ``isBase64Encoded``) as one ``http.request`` message;
3. collects the response: status, headers (repeated ones joined with ", "), every
   ``Set-Cookie`` into ``cookies``, and the body as text for textual media types, else base64
   with ``isBase64Encoded`` (images, octet-stream, compressed bodies).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")
_TEXT_SUFFIXES = ("+json", "+xml")


def is_http_event(event: Mapping[str, Any]) -> bool:
    context = event.get("requestContext")
    return (
        event.get("version") == "2.0"
        and isinstance(context, dict)
        and isinstance(context.get("http"), dict)
    )


def scope_of(event: Mapping[str, Any], request_id: str, deadline: float | None) -> dict[str, Any]:
    """The ASGI scope for an HTTP API 2.0 event."""
    context = event["requestContext"]
    http = context["http"]
    raw_path = str(event.get("rawPath") or http.get("path") or "/")
    stage = context.get("stage")
    if stage and stage != "$default":
        prefix = f"/{stage}"
        if raw_path == prefix or raw_path.startswith(prefix + "/"):
            raw_path = raw_path[len(prefix) :] or "/"
    headers: list[tuple[bytes, bytes]] = [
        (str(name).lower().encode("latin-1"), str(value).encode("latin-1", "replace"))
        for name, value in (event.get("headers") or {}).items()
        if str(name).lower() != "cookie"
    ]
    cookies = event.get("cookies") or []
    if cookies:
        headers.append((b"cookie", "; ".join(cookies).encode("latin-1", "replace")))
    host = str(context.get("domainName") or (event.get("headers") or {}).get("host") or "lambda")
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", host.encode("latin-1")))
    forwarded = (event.get("headers") or {}).get("x-forwarded-proto", "https")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": str(http.get("protocol", "HTTP/1.1")).removeprefix("HTTP/") or "1.1",
        "method": str(http.get("method", "GET")).upper(),
        "scheme": forwarded,
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1", "replace"),
        "root_path": "",
        "query_string": str(event.get("rawQueryString") or "").encode("latin-1", "replace"),
        "headers": headers,
        "client": (str(http.get("sourceIp") or "0.0.0.0"), 0),
        "server": (host, 443 if forwarded == "https" else 80),
        "state": {"request_id": request_id, "deadline": deadline},
    }


async def handle(
    app: ASGIApp,
    event: Mapping[str, Any],
    request_id: str,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run one HTTP API 2.0 event through ``app``; returns the Lambda response."""
    body = event.get("body") or ""
    data = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode("utf-8")
    scope = scope_of(event, request_id, deadline)
    done = asyncio.Event()
    sent_request = False
    start: Message = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": data, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    if not start:
        return {"statusCode": 500, "headers": {"content-type": "text/plain"}, "body": "no response"}
    return response_of(start, b"".join(chunks))


def response_of(start: Message, body: bytes) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in start.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        elif name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    result: dict[str, Any] = {"statusCode": int(start["status"]), "headers": headers}
    if cookies:
        result["cookies"] = cookies
    if _is_text(headers):
        try:
            result["body"] = body.decode("utf-8")
            result["isBase64Encoded"] = False
            return result
        except UnicodeDecodeError:
            pass
    result["body"] = base64.b64encode(body).decode("ascii")
    result["isBase64Encoded"] = True
    return result


def _is_text(headers: Mapping[str, str]) -> bool:
    if headers.get("content-encoding", "identity") not in ("", "identity"):
        return False
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media.startswith(_TEXT_TYPES) or media.endswith(_TEXT_SUFFIXES)


def deadline_from(remaining_ms: int | None, margin: float = 0.2) -> float | None:
    """A ``time.monotonic()`` deadline from Lambda's remaining time, less a margin to answer."""
    if remaining_ms is None:
        return None
    return time.monotonic() + max(0.0, remaining_ms / 1000 - margin)
