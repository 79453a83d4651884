"""SQS batches in-process: the deadline is capped by the function's remaining time; backoff delays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qr.runtime import ports
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.entry import LambdaRuntime
from tests.conftest import MakeProject

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


class _Sqs:
    """Records ChangeMessageVisibility calls (the only SQS call a failing batch makes)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def change_message_visibility(self, **request: Any) -> None:
        self.calls.append(request)


class _Context:
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _record(message_id: str, body: object, receive_count: int = 1) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((EVENTS / "sqs_record.json").read_text())
    record["messageId"] = message_id
    record["receiptHandle"] = f"handle-{message_id}"
    record["body"] = json.dumps(body)
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:demo-production-slow"
    return record


@pytest.mark.usefixtures("restore_logging")
def test_remaining_time_caps_the_deadline_and_failures_back_off(make_project: MakeProject) -> None:
    root = make_project(
        {
            "qr.yaml": "name: demo\n",
            "queues/slow.py": """
                import asyncio

                config = {"timeout": 300, "backoff": {"strategy": "exponential", "initial": 10,
                          "max": 1000, "jitter": False}}

                async def handler(payload):
                    if payload == "fail":
                        raise RuntimeError("no")
                    if payload == "slow":
                        await asyncio.sleep(300)  # cut by the function's remaining time
                    return payload
            """,
        }
    )
    sqs = _Sqs()
    environ = {
        "LOG_LEVEL": "CRITICAL",
        "QR_QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/123456789012/demo-production-",
    }
    runtime = LambdaRuntime(root, environ, Clients(lambda service, **_: sqs))
    try:
        event = {
            "Records": [
                _record("ok", "fine"),
                _record("slow", "slow"),
                _record("fail", "fail", receive_count=3),
            ]
        }
        # 1.3 s left, less the 1 s kept to answer: the slow job gets 0.3 s, not 300 s
        answer = runtime.dispatch(event, _Context(1300))
    finally:
        runtime.close()
        ports.set_platform(None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "slow"}, {"itemIdentifier": "fail"}]}
    delays = {c["ReceiptHandle"]: c["VisibilityTimeout"] for c in sqs.calls}
    # exponential backoff by receive count: 10 s after the 1st receive, 40 s after the 3rd
    assert delays == {"handle-slow": 10, "handle-fail": 40}
    assert {c["QueueUrl"] for c in sqs.calls} == {
        "https://sqs.us-east-1.amazonaws.com/123456789012/demo-production-slow"
    }
