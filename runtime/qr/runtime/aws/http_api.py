"""API Gateway HTTP API (payload format 2.0) events <-> the ASGI app ``qr dev`` serves.

A small adapter of our own rather than Mangum: the app is always ours, only one event format is
needed, and the adapter is ~150 lines with nothing to configure. ``handle(app, event, ...)``:

1. decodes the body (strict base64 when ``isBase64Encoded``; a body that is not base64 is not
   passed on: ``scope["state"]["bad_request"]`` says why and the app answers 400);
2. builds an ASGI ``http`` scope from the event: ``rawPath`` (percent-encoded, as the router
   wants it) and its decoded ``path``, ``rawQueryString`` (repeated keys kept), headers (API
   Gateway joins repeated headers with commas, which HTTP allows for every header but
   ``Set-Cookie``; values are UTF-8 encoded, the bytes a client sent to ``qr dev``), the
   ``cookies`` array as one ``Cookie`` header, ``Content-Length`` from the decoded body (API
   Gateway passes the client's header on, or none at all, and has already de-chunked the body),
   host, client address, and ``scope["state"]`` with the Lambda request id and the deadline
   (from the function's remaining time), which the app uses for ``request_id`` and its timeout;
3. feeds the body as one ``http.request`` message;
4. collects the response: status, headers (repeated ones joined with ", "), every
   ``Set-Cookie`` into ``cookies``, and the body as text for textual media types, else base64
   with ``isBase64Encoded`` (images, octet-stream, compressed bodies).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")
_TEXT_SUFFIXES = ("+json", "+xml")
_REPLACED_HEADERS = frozenset({"cookie", "content-length", "transfer-encoding"})
"""Event headers the scope does not copy: the ``cookies`` array and the decoded body replace them."""


def is_http_event(event: Mapping[str, Any]) -> bool:
    context = event.get("requestContext")
    return (
        event.get("version") == "2.0"
        and isinstance(context, dict)
        and isinstance(context.get("http"), dict)
    )


def body_of(event: Mapping[str, Any]) -> bytes:
    """The request body; ``ValueError`` when it is marked base64 but is not (strictly) base64."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode("utf-8")
    try:
        return base64.b64decode(str(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            f"the event's body is marked isBase64Encoded but is not valid base64 ({exc})"
        ) from exc


def scope_of(
    event: Mapping[str, Any], request_id: str, deadline: float | None, body: bytes = b""
) -> dict[str, Any]:
    """The ASGI scope for an HTTP API 2.0 event whose decoded body is ``body``."""
    context = event["requestContext"]
    http = context["http"]
    raw_path = str(event.get("rawPath") or http.get("path") or "/")
    stage = context.get("stage")
    if stage and stage != "$default":
        prefix = f"/{stage}"
        if raw_path == prefix or raw_path.startswith(prefix + "/"):
            raw_path = raw_path[len(prefix) :] or "/"
    event_headers: Mapping[str, Any] = event.get("headers") or {}
    headers: list[tuple[bytes, bytes]] = [
        (str(name).lower().encode("latin-1", "replace"), str(value).encode("utf-8"))
        for name, value in event_headers.items()
        if str(name).lower() not in _REPLACED_HEADERS
    ]
    cookies = event.get("cookies") or []
    if cookies:
        headers.append((b"cookie", "; ".join(cookies).encode("utf-8")))
    if body or any(str(name).lower() == "content-length" for name in event_headers):
        headers.append((b"content-length", str(len(body)).encode("ascii")))
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
    problem: str | None = None
    try:
        data = body_of(event)
    except ValueError as exc:
        data, problem = b"", str(exc)
    scope = scope_of(event, request_id, deadline, data)
    if problem is not None:
        scope["state"]["bad_request"] = problem
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
