"""The HTTP API events ``qr dev --docker`` builds from local requests (``qr.cli.docker.events``)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from qr.cli.docker.events import _request_time, http_event, new_request_id
from qr.runtime.aws import http_api

AWS_SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "http_get.json"
NOW = 1_765_000_000.25  # 2025-12-06 05:46:40 UTC


def _event(**overrides: object) -> dict[str, object]:
    request = {
        "method": "get",
        "path": "/items/42",
        "query_string": "tag=a&tag=b&q=hello%20world",
        "headers": [
            ("Host", "127.0.0.1:8000"),
            ("Accept", "text/html"),
            ("Accept", "application/json"),
            ("Cookie", "session=abc123; theme=dark"),
            ("User-Agent", "curl/8.0"),
        ],
        "body": b"",
        "request_id": "5d0b6c1e-8f3a-4c2b-9d1e-0a1b2c3d4e5f",
        "now": NOW,
    }
    request.update(overrides)
    return http_event(**request)  # type: ignore[arg-type]


def test_an_event_has_the_keys_api_gateway_sends() -> None:
    sample = json.loads(AWS_SAMPLE.read_text())
    event = _event()
    assert set(event) == set(sample)
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert set(context) == set(sample["requestContext"])
    assert set(context["http"]) == set(sample["requestContext"]["http"])
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert context["time"] == "06/Dec/2025:05:46:40 +0000"
    assert context["timeEpoch"] == 1_765_000_000_250


def test_the_request_reaches_the_app_as_it_was_sent() -> None:
    event = _event()
    assert event["headers"] == {
        "host": "127.0.0.1:8000",
        "accept": "text/html,application/json",  # repeated headers joined, as API Gateway does
        "user-agent": "curl/8.0",
    }
    assert event["cookies"] == ["session=abc123", "theme=dark"]
    assert event["queryStringParameters"] == {"tag": "a,b", "q": "hello world"}

    # the entry point reads it as it reads AWS's sample of the same request
    ours = http_api.scope_of(event, "req-1", None)
    sample = http_api.scope_of(json.loads(AWS_SAMPLE.read_text()), "req-1", None)
    for key in ("method", "path", "raw_path", "query_string", "http_version"):
        assert ours[key] == sample[key], key
    cookie = dict(sample["headers"])[b"cookie"]
    assert dict(ours["headers"])[b"cookie"] == cookie == b"session=abc123; theme=dark"
    assert dict(ours["headers"])[b"host"] == b"127.0.0.1:8000"


def test_the_domain_name_is_the_host_header_unless_given() -> None:
    context = _event()["requestContext"]
    assert isinstance(context, dict)
    assert context["domainName"] == "127.0.0.1:8000"
    assert context["domainPrefix"] == "127"
    no_host = _event(headers=[("Accept", "*/*")], query_string="")
    assert no_host["requestContext"]["domainName"] == "localhost"  # type: ignore[index]
    assert "queryStringParameters" not in no_host
    given = _event(host="api.example.com")
    assert given["requestContext"]["domainName"] == "api.example.com"  # type: ignore[index]


def test_request_ids_are_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    generated = _event(request_id=None)["requestContext"]["requestId"]  # type: ignore[index]
    assert uuid.UUID(generated).version == 4


def test_request_time_follows_the_clock_second_by_second() -> None:
    now = time.time()
    for epoch in (NOW, NOW + 0.5, NOW + 1, now, now + 86_400, NOW):
        expected = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(int(epoch)))
        assert _request_time(epoch) == expected
