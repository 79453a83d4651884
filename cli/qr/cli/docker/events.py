"""The AWS event shapes the Lambda entry point receives in production, built from local traffic.

Pure functions, no IO: the local platform under ``--docker`` turns each HTTP request, WebSocket
event, batch of claimed queue jobs and schedule firing into the event API Gateway, the SQS event
source mapping or EventBridge Scheduler would send, and the function's answer back.

* HTTP: API Gateway HTTP API payload format 2.0 (lower-case headers with repeated ones joined by
  commas, ``cookies`` split out, ``rawQueryString``, a base64 body unless it is text); the
  response may be the structured ``{statusCode, headers, cookies, body, isBase64Encoded}`` or any
  other JSON value, which API Gateway sends as a 200 JSON body.
* WebSocket: ``$connect`` / ``$disconnect`` / message events with ``requestContext.connectionId``,
  ``eventType`` and ``routeKey`` (the body's ``action`` when a route has that name, as the route
  selection expression ``$request.body.action`` does, else ``$default``).
* SQS: a ``Records`` batch with the message attributes of the shared queue encoding
  (``content_type``, ``user_id``, ``param_<name>``); the response's ``batchItemFailures``.
* Schedules: the EventBridge Scheduler target input ``{"qr": "schedule", "name": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from qr.cli.docker._http import UtcSecond

ACCOUNT = "000000000000"
API_ID = "qrdev"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")


_request_time = UtcSecond("%d/%b/%Y:%H:%M:%S +0000")
"""``requestContext.time`` of an epoch: ``05/Dec/2026:19:37:16 +0000``."""


def new_request_id() -> str:
    """A version 4 UUID, the form of Lambda's request ids.

    From ``random`` rather than ``uuid.uuid4()``'s ``os.urandom``: a system call per request,
    and an id needs to be unique, not secret."""
    digits = f"{random.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]  # the RFC 4122 variant: 10xx
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return (
        kind.startswith(_TEXT_TYPES)
        or kind.endswith(_TEXT_SUFFIXES)
        or kind == "application/x-www-form-urlencoded"
    )


def _body(data: bytes, content_type: str) -> tuple[str, bool]:
    """API Gateway passes text as is and base64-encodes everything else."""
    if not data:
        return "", False
    if _is_text(content_type) or not content_type:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), True


def http_event(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    host: str | None = None,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for one request (``host``: the domain name,
    by default the request's ``Host`` header, else ``localhost``)."""
    now = time.time() if now is None else now
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True) if query_string else ():
        query[key] = f"{query[key]},{value}" if key in query else value
    text, encoded = _body(body, joined.get("content-type", ""))
    request_id = request_id or new_request_id()
    if host is None:
        host = joined.get("host") or "localhost"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = text
    return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_response(result: Any) -> HttpResponse:
    """The HTTP response API Gateway makes of a payload 2.0 function result."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Not the structured form: API Gateway infers a 200 JSON response.
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode())
    headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name).lower(), str(v)) for v in values]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body")
    if raw is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(str(raw))
    else:
        data = str(raw).encode("utf-8")
    if data and not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    return HttpResponse(int(result["statusCode"]), headers, data)


def websocket_event(
    event_type: str,
    connection_id: str,
    *,
    body: str | bytes | None = None,
    route_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    query_string: str = "",
    connected_at: float | None = None,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
    close_code: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """A WebSocket API event: ``event_type`` is ``CONNECT``, ``MESSAGE`` or ``DISCONNECT``."""
    now = time.time() if now is None else now
    keys = {"CONNECT": "$connect", "DISCONNECT": "$disconnect", "MESSAGE": "$default"}
    context: dict[str, Any] = {
        "routeKey": route_key or keys[event_type],
        "eventType": event_type,
        "extendedRequestId": str(uuid.uuid4()),
        "requestTime": _request_time(now),
        "messageDirection": "IN",
        "stage": "$default",
        "connectedAt": int((connected_at or now) * 1000),
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": source_ip},
        "requestId": str(uuid.uuid4()),
        "domainName": host,
        "connectionId": connection_id,
        "apiId": API_ID,
    }
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if event_type == "MESSAGE":
        context["messageId"] = str(uuid.uuid4())
        if isinstance(body, bytes):
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = body or ""
    if event_type == "CONNECT":
        event["headers"] = dict(headers or {})
        event["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()}
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if query:
            event["queryStringParameters"] = query
    if event_type == "DISCONNECT":
        context["disconnectStatusCode"] = close_code or 1000
        context["disconnectReason"] = ""
    return event


def route_key(body: str | bytes, actions: Iterable[str]) -> str:
    """The route API Gateway selects with ``$request.body.action``."""
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        action = data.get("action") if isinstance(data, dict) else None
        if isinstance(action, str) and action in set(actions):
            return action
    return "$default"


@dataclass(frozen=True)
class QueueMessage:
    """A claimed job as the SQS event source mapping would deliver it."""

    message_id: str
    receipt_handle: str
    body: str
    content_type: str
    received_count: int
    sent_ms: int
    first_received_ms: int
    user_id: str | None = None
    params: Mapping[str, str] | None = None
    group_id: str | None = None
    dedupe_id: str | None = None
    sequence_number: int | None = None


def sqs_event(queue_arn: str, region: str, messages: Sequence[QueueMessage]) -> dict[str, Any]:
    records = []
    for message in messages:
        attributes = {
            "ApproximateReceiveCount": str(message.received_count),
            "SentTimestamp": str(message.sent_ms),
            "SenderId": ACCOUNT,
            "ApproximateFirstReceiveTimestamp": str(message.first_received_ms),
        }
        if message.group_id is not None:
            attributes["MessageGroupId"] = message.group_id
            attributes["MessageDeduplicationId"] = message.dedupe_id or message.message_id
            attributes["SequenceNumber"] = str(message.sequence_number or 0)
        values = {"content_type": message.content_type}
        if message.user_id is not None:
            values["user_id"] = message.user_id
        for key, value in sorted((message.params or {}).items()):
            values[f"param_{key}"] = value
        records.append(
            {
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": attributes,
                "messageAttributes": {
                    key: {
                        "stringValue": value,
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String",
                    }
                    for key, value in values.items()
                },
                "md5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def batch_failures(result: Any, message_ids: Sequence[str]) -> set[str]:
    """The message ids Lambda puts back on the queue, by the ``ReportBatchItemFailures`` rules.

    Empty or null response or list: all succeeded. An unreadable response, an empty
    ``itemIdentifier`` or one that is not in the batch: the whole batch failed.
    """
    everything = set(message_ids)
    if result is None:
        return set()
    if not isinstance(result, dict):
        return everything
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in everything:
            return everything
        failed.add(str(identifier))
    return failed


def schedule_event(name: str) -> dict[str, Any]:
    """The EventBridge Scheduler target input Terraform configures (shared contract)."""
    return {"qr": "schedule", "name": name}
