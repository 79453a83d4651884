"""The producer API: encoding, validation errors, user id, queues.self(), .http."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import qr.runtime.queues as queues_module
from qr.runtime import queues
from qr.runtime.context import Invocation, invocation
from qr.runtime.errors import HTTPError
from qr.runtime.ports import OutgoingJob, Platform, set_platform
from qr.runtime.queues import (
    BINARY,
    JSON,
    MAX_MESSAGE_BYTES,
    TEXT,
    QueueError,
    decode_payload,
    encode_payload,
    queue_name_of,
)
from tests.conftest import MakeProject


class RecordingPort:
    def __init__(self) -> None:
        self.sent: list[OutgoingJob] = []

    def send(self, job: OutgoingJob) -> str:
        self.sent.append(job)
        return f"job-{len(self.sent)}"


class Unused:
    """Ports the producer never touches."""


@pytest.fixture
def port() -> Iterator[RecordingPort]:
    recording = RecordingPort()
    platform = Platform(
        "test",
        recording,
        Unused(),  # type: ignore[arg-type]
        Unused(),  # type: ignore[arg-type]
        queue_names=frozenset({"emails", "screenshots", "orders.fifo"}),
    )
    previous = set_platform(platform)
    yield recording
    set_platform(previous)


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ({"to": "a@b.c", "n": [1, 2.5, None, True]}, JSON),
        ([1, "two"], JSON),
        (42, JSON),
        (None, JSON),
        ("héllo\nworld", TEXT),
        ("", TEXT),
        (b"\x00\xff binary", BINARY),
        (bytearray(b"xy"), BINARY),
    ],
)
def test_payload_round_trips_as_the_same_type(payload: object, content_type: str) -> None:
    body, kind = encode_payload(payload)
    assert kind == content_type
    decoded = decode_payload(body, kind)
    assert decoded == payload
    assert type(decoded) is (bytes if isinstance(payload, bytearray) else type(payload))


def test_json_keeps_unicode_unescaped_and_lone_surrogates_escaped() -> None:
    assert encode_payload({"a": "é"})[0] == '{"a":"é"}'
    body, _ = encode_payload({"a": "\ud800"})
    assert body == '{"a":"\\ud800"}'
    assert decode_payload(body, JSON) == {"a": "\ud800"}


def test_decode_rejects_bad_bodies_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_payload("not base64!", BINARY)
    with pytest.raises(ValueError, match="not valid JSON"):
        decode_payload("{", JSON)
    with pytest.raises(ValueError, match="unknown job content type"):
        decode_payload("x", "image/png")
    assert decode_payload("plain", None) == "plain"
    assert decode_payload('{"a":1}', None) == {"a": 1}


def test_push_sends_encoded_job_with_the_users_id(port: RecordingPort) -> None:
    with invocation(Invocation("http", "req-1", user={"id": 7})):
        job_id = queues["emails"].push({"to": "x"}, delay=30)
    assert job_id == "job-1"
    (job,) = port.sent
    assert job == OutgoingJob("emails", '{"to":"x"}', JSON, delay=30.0, user_id="7")


def test_fifo_push_carries_group_and_dedupe(port: RecordingPort) -> None:
    queues["orders.fifo"].group(42).dedupe("order-9").push("x")
    (job,) = port.sent
    assert (job.group_id, job.dedupe_id, job.user_id) == ("42", "order-9", None)


def test_unknown_queue_suggests_a_close_name(port: RecordingPort) -> None:
    with pytest.raises(QueueError) as caught:
        queues["emial"].push({})
    text = str(caught.value)
    assert "there is no queue named 'emial'. Did you mean 'emails'?" in text
    assert "known queue: emails, orders.fifo, screenshots" in text
    assert "test_queues_producer.py:" in caught.value.where  # the caller's file:line
    assert port.sent == []


def test_fifo_push_without_group_is_an_error(port: RecordingPort) -> None:
    with pytest.raises(QueueError, match=r"needs a message group[\s\S]*\.group\(some_id\)"):
        queues["orders.fifo"].push({})


def test_delay_on_fifo_is_an_error(port: RecordingPort) -> None:
    with pytest.raises(QueueError, match="cannot delay a single job"):
        queues["orders.fifo"].group("g").push({}, delay=5)


@pytest.mark.parametrize("delay", [901, -1, 1e9])
def test_delay_out_of_range_is_an_error(port: RecordingPort, delay: float) -> None:
    with pytest.raises(QueueError, match="from 0 to 900 seconds"):
        queues["emails"].push({}, delay=delay)


@pytest.mark.parametrize("delay", ["5", True, float("nan")])
def test_delay_must_be_a_number(port: RecordingPort, delay: object) -> None:
    with pytest.raises(QueueError, match="delay must be"):
        queues["emails"].push({}, delay=delay)  # type: ignore[arg-type]


def test_delay_at_the_limit_is_accepted(port: RecordingPort) -> None:
    queues["emails"].push({}, delay=900)
    assert port.sent[0].delay == 900


def test_payload_over_one_mib_is_an_error(port: RecordingPort) -> None:
    with pytest.raises(QueueError, match=r"over the SQS limit of 1,048,576 bytes"):
        queues["emails"].push("x" * MAX_MESSAGE_BYTES)
    # The limit counts the encoded body plus attributes: base64 grows bytes by a third.
    with pytest.raises(QueueError, match="bytes encoded"):
        queues["emails"].push(b"x" * 800_000)
    queues["emails"].push("x" * (MAX_MESSAGE_BYTES - 1000))
    assert len(port.sent) == 1


def test_non_serialisable_payload_is_an_error(port: RecordingPort) -> None:
    with pytest.raises(QueueError, match=r"\(set\) cannot be sent: it is not JSON-serialisable"):
        queues["emails"].push({1, 2})
    with pytest.raises(QueueError, match="not JSON-serialisable"):
        queues["emails"].push({"n": float("inf")})
    with pytest.raises(QueueError, match="not JSON-serialisable"):
        queues["emails"].push({"when": object()})


def test_text_with_characters_sqs_rejects_is_an_error(port: RecordingPort) -> None:
    with pytest.raises(QueueError, match=r"character '\\x00'[\s\S]*push bytes instead"):
        queues["emails"].push("a\x00b")


def test_dedupe_on_a_standard_queue_is_an_error() -> None:
    with pytest.raises(QueueError, match="dedupe\\(\\) is for FIFO queues"):
        queues["emails"].dedupe("x")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, None, True, 1.5])
def test_group_ids_must_be_sqs_ids(bad: object) -> None:
    with pytest.raises(QueueError, match="group id must be 1-128"):
        queues["orders.fifo"].group(bad)


def test_push_without_a_platform_says_how_to_get_one() -> None:
    previous = set_platform(None)
    try:
        with pytest.raises(QueueError, match="needs a running platform"):
            queues["emails"].push({})
    finally:
        set_platform(previous)


def test_unchecked_platform_accepts_any_name(port: RecordingPort) -> None:
    from qr.runtime.ports import get_platform

    get_platform().queue_names = None
    assert queues["anything"].push(1) == "job-1"


def test_queues_is_the_module_whichever_way_it_is_imported() -> None:
    assert queues is queues_module
    assert queues_module.queues is queues
    assert queues["emails"] == queues_module.Queue("emails")
    with pytest.raises(QueueError, match="queue names are strings"):
        queues[3]  # type: ignore[index]


def test_queues_self_in_a_queue_file(make_project: MakeProject) -> None:
    from qr.runtime.manifest import scan

    root = make_project(
        {
            "queues/update_profile.fifo.py": """
                from qr.runtime import queues
                queue = queues.self()
                def handler(payload): ...
            """,
            "api/index.py": """
                from qr.runtime import queues
                def get():
                    return queues.self().name
            """,
        }
    )
    manifest = scan(root)
    import sys

    assert sys.modules[manifest.queues[0].module].queue == queues["update_profile.fifo"]
    route = sys.modules[manifest.routes[0].module]
    with pytest.raises(QueueError, match=r"only for files in queues/, and this is api/index.py"):
        route.get()


def test_queue_name_of_paths() -> None:
    assert queue_name_of("queues/emails.py") == "emails"
    assert queue_name_of(str(Path("/x/queues/a.fifo.py"))) == "a.fifo"
    assert queue_name_of("api/queues.py") is None
    assert queue_name_of("queues/readme.txt") is None


def test_http_handler_pushes_the_body_and_answers_202(port: RecordingPort) -> None:
    post = queues["screenshots"].http
    with invocation(Invocation("http", "r", user={"id": "u1"})):
        response = post(body={"url": "https://x"}, params={"id": "5"})
    assert response.status_code == 202
    assert response.headers["x-job-id"] == "job-1"
    assert json.loads(response.body) == {"job_id": "job-1"}
    (job,) = port.sent
    assert (job.body, job.user_id, job.params) == ('{"url":"https://x"}', "u1", {"id": "5"})


def test_fifo_http_handler_takes_group_and_dedupe_from_the_path(port: RecordingPort) -> None:
    post = queues["orders.fifo"].http
    post(body="x", params={"group": "g1", "dedupe": "d1"})
    assert (port.sent[0].group_id, port.sent[0].dedupe_id) == ("g1", "d1")
    with pytest.raises(HTTPError, match="needs a \\[group\\] path parameter"):
        post(body="x", params={})


def test_http_handler_turns_push_errors_into_4xx(port: RecordingPort) -> None:
    post = queues["emails"].http
    with pytest.raises(HTTPError) as caught:
        post(body="x" * MAX_MESSAGE_BYTES, params={})
    assert caught.value.status == 413
    with pytest.raises(HTTPError) as caught:
        post(body="\x00", params={})
    assert caught.value.status == 400
