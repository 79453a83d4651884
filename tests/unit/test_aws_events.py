"""Pieces of the Lambda platform that need no AWS: log lines, event shapes, response encoding."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from qr.runtime import context
from qr.runtime.aws import http_api
from qr.runtime.aws.batch import message_of
from qr.runtime.aws.entry import _is_sqs_event as is_sqs_event
from qr.runtime.aws.jsonlog import JsonFormatter

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


def _record(message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("nope")
        except ValueError as error:
            info = (type(error), error, error.__traceback__)
    return logging.LogRecord("qr.test", logging.WARNING, __file__, 1, message, (), info)


def test_json_log_lines_carry_the_invocation() -> None:
    formatter = JsonFormatter()
    outside = json.loads(formatter.format(_record("plain")))
    assert outside["level"] == "WARNING" and outside["message"] == "plain"
    assert "request_id" not in outside
    with context.invocation(context.Invocation("job", "job-7", handler="queues/emails.py")):
        line = json.loads(formatter.format(_record("inside", exc=True)))
    assert line["request_id"] == "job-7"
    assert line["kind"] == "job"
    assert line["handler"] == "queues/emails.py"
    assert "ValueError: nope" in line["error"]
    assert line["time"].endswith("+00:00")


def test_http_scope_from_an_http_api_event() -> None:
    event = json.loads((EVENTS / "http_get.json").read_text())
    assert http_api.is_http_event(event)
    scope = http_api.scope_of(event, "req-1", None)
    headers = dict(scope["headers"])
    assert scope["method"] == "GET"
    assert scope["path"] == "/items/42"
    assert scope["query_string"] == b"tag=a&tag=b&q=hello%20world"
    assert headers[b"cookie"] == b"session=abc123; theme=dark"
    assert headers[b"host"] == b"r3pmxmplak.execute-api.us-east-1.amazonaws.com"
    assert scope["state"] == {"request_id": "req-1", "deadline": None}
    assert scope["scheme"] == "https"

    # a named stage's prefix is not part of the route
    event["requestContext"]["stage"] = "v1"
    event["rawPath"] = "/v1/items/a%2Fb"
    scope = http_api.scope_of(event, "req-2", None)
    assert scope["raw_path"] == b"/items/a%2Fb"
    assert scope["path"] == "/items/a/b"


def test_http_response_encoding() -> None:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"vary", b"origin"),
            (b"vary", b"accept"),
        ],
    }
    text = http_api.response_of(start, "<p>é</p>".encode())
    assert text == {
        "statusCode": 200,
        "headers": {"content-type": "text/html; charset=utf-8", "vary": "origin, accept"},
        "cookies": ["a=1", "b=2"],
        "body": "<p>é</p>",
        "isBase64Encoded": False,
    }
    gzip = {**start, "headers": [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")]}
    binary = http_api.response_of(gzip, b"\x1f\x8b\x00")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x1f\x8b\x00"


def test_sqs_record_to_job_message() -> None:
    record = json.loads((EVENTS / "sqs_record.json").read_text())
    record["attributes"].update({"MessageGroupId": "g1", "SequenceNumber": "18849496460467696128"})
    record["messageAttributes"]["user_id"] = {"stringValue": "u9", "dataType": "String"}
    record["messageAttributes"]["param_kind"] = {"stringValue": "x", "dataType": "String"}
    assert is_sqs_event({"Records": [record]})
    assert not is_sqs_event({"Records": []})
    message = message_of(record, "emails")
    assert message.job_id == "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert message.content_type == "application/json"
    assert message.group_id == "g1"
    assert message.sequence_number == 18849496460467696128
    assert message.user_id == "u9"
    assert message.params == {"kind": "x"}
    assert message.queued_at == 1773120100.0
    assert message.received_count == 1
