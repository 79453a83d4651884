"""Log rendering, --since/--filter parsing and the StartLiveTail stream read from encoded frames."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import botocore.session
import pytest
from botocore.eventstream import EventStream
from botocore.exceptions import EndpointConnectionError
from botocore.model import StructureShape
from botocore.parsers import EventStreamJSONParser

from qr.cli.console import Output
from qr.cli.deploy import logs
from qr.cli.errors import QrError


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, prelude CRC, string headers, payload, message CRC."""
    encoded = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event_frame(kind: str, body: dict[str, Any]) -> bytes:
    return frame(
        {":message-type": "event", ":event-type": kind, ":content-type": "application/json"},
        json.dumps(body).encode(),
    )


def exception_frame(kind: str, message: str) -> bytes:
    return frame(
        {
            ":message-type": "exception",
            ":exception-type": kind,
            ":content-type": "application/json",
        },
        json.dumps({"message": message}).encode(),
    )


class RawStream:
    """What botocore reads: ``stream()`` yielding byte chunks (split mid-frame on purpose)."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self.data = data
        self.chunk = chunk

    def stream(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            yield self.data[i : i + self.chunk]


def live_tail_stream(data: bytes) -> EventStream[Any]:
    model = botocore.session.get_session().get_service_model("logs")
    output = model.operation_model("StartLiveTail").output_shape
    assert isinstance(output, StructureShape)
    shape = output.members["responseStream"]
    assert isinstance(shape, StructureShape)
    return EventStream(RawStream(data), shape, EventStreamJSONParser(), "StartLiveTail")


def result(message: str, timestamp: int) -> dict[str, Any]:
    return {
        "logStreamName": "2026/11/23/[3]abc",
        "logGroupIdentifier": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/app",
        "message": message,
        "timestamp": timestamp,
        "ingestionTime": timestamp + 5,
    }


RECORDED = (
    event_frame(
        "sessionStart",
        {
            "requestId": "r1",
            "sessionId": "s1",
            "logGroupIdentifiers": [
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/app"
            ],
        },
    )
    + event_frame("sessionUpdate", {"sessionMetadata": {"sampled": False}, "sessionResults": []})
    + event_frame(
        "sessionUpdate",
        {
            "sessionMetadata": {"sampled": False},
            "sessionResults": [
                result("START RequestId: abc Version: 3", 1_700_000_000_000),
                result('{"level":"INFO","message":"hi","request_id":"abc"}', 1_700_000_000_100),
            ],
        },
    )
)


def test_live_tail_frames_are_decoded_into_events() -> None:
    events = list(logs.events_from_stream(live_tail_stream(RECORDED)))
    assert [(e.timestamp, e.message) for e in events] == [
        (1_700_000_000_000, "START RequestId: abc Version: 3"),
        (1_700_000_000_100, '{"level":"INFO","message":"hi","request_id":"abc"}'),
    ]
    assert events[0].stream == "2026/11/23/[3]abc"


class FakeLiveTailClient:
    """start_live_tail answering with recorded streams, then failing like moto does."""

    def __init__(self, streams: list[bytes]) -> None:
        self.streams = streams
        self.requests: list[dict[str, Any]] = []

    def start_live_tail(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if not self.streams:
            raise EndpointConnectionError(endpoint_url="http://stream-127.0.0.1:5000/")
        return {"responseStream": live_tail_stream(self.streams.pop(0))}


def test_a_timed_out_session_is_reopened_and_an_unreachable_endpoint_ends_live_tail() -> None:
    client = FakeLiveTailClient(
        [RECORDED + exception_frame("SessionTimeoutException", "3 hours"), RECORDED]
    )
    seen: list[str] = []
    with pytest.raises(logs.LiveTailUnavailable, match="Could not connect"):
        for event in logs.live_tail(client, "arn:group", '"boom"'):
            seen.append(event.message)
    assert len(seen) == 4
    assert len(client.requests) == 3
    assert client.requests[0] == {
        "logGroupIdentifiers": ["arn:group"],
        "logEventFilterPattern": '"boom"',
    }


def test_other_stream_errors_end_live_tail() -> None:
    client = FakeLiveTailClient([exception_frame("SessionStreamingException", "gone")])
    with pytest.raises(logs.LiveTailUnavailable, match="SessionStreamingException"):
        list(logs.live_tail(client, "arn:group", None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("90s", timedelta(seconds=90)), ("2h", timedelta(hours=2)),
     ("1d", timedelta(days=1)), ("1w", timedelta(weeks=1)), ("15", timedelta(minutes=15))],
)  # fmt: skip
def test_since(text: str, expected: timedelta) -> None:
    assert logs.parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "0m", "abc", "5y", "-3m"])
def test_since_rejects_nonsense(text: str) -> None:
    with pytest.raises(QrError, match="not a duration"):
        logs.parse_since(text)


def test_filter_patterns() -> None:
    assert logs.filter_pattern(None) is None
    assert logs.filter_pattern("ERROR") == "ERROR"
    assert logs.filter_pattern("job failed") == '"job failed"'
    assert logs.filter_pattern('{ $.level = "ERROR" }') == '{ $.level = "ERROR" }'


def rendered(message: str, *, rich: bool = False) -> str:
    stream = io.StringIO()
    logs.render(
        logs.LogEvent(timestamp=1_700_000_000_123, message=message), Output(stream, rich=rich)
    )
    return stream.getvalue()


def test_render_qr_json_lines_by_level_with_request_id() -> None:
    line = json.dumps(
        {
            "time": "x",
            "level": "ERROR",
            "logger": "app",
            "message": "charge failed",
            "request_id": "job-42",
            "handler": "queues/payments.py",
            "error": "Traceback (most recent call last):\nValueError: nope",
        }
    )
    assert rendered(line) == (
        "22:13:20.123 ERROR   [job-42] (queues/payments.py) charge failed\n"
        "    Traceback (most recent call last):\n"
        "    ValueError: nope\n"
    )
    coloured = rendered(line, rich=True)
    assert "\x1b[" in coloured and "charge failed" in coloured and "job-42" in coloured


def test_render_lambda_json_and_plain_lines() -> None:
    lambda_json = '{"timestamp":"x","level":"WARN","message":"slow","requestId":"r-1"}'
    assert rendered(lambda_json) == "22:13:20.123 WARN    [r-1] slow\n"
    assert rendered("START RequestId: r-1 Version: 3\n") == (
        "22:13:20.123 START RequestId: r-1 Version: 3\n"
    )
    assert rendered("[not json") == "22:13:20.123 [not json\n"
