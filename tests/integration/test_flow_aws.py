"""Typed payloads and flow control on the Lambda platform, against a moto server.

Each test runs the Lambda runtime in-process (``LambdaRuntime`` with boto3 clients on moto): it
pushes through the runtime's own ``queues[...]`` (SQS SendMessage), receives the messages as the
event source mapping would, hands them over as an SQS event and checks what the adapter did on
SQS (and DynamoDB).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.runtime import ports
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.entry import LambdaRuntime
from tests.conftest import MakeProject
from tests.integration.lambda_support import create_connections_table

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_TESTS = iter(range(1_000_000))


class Aws:
    """The Lambda runtime of one project on moto, and the SQS side of the event source mapping."""

    def __init__(self, root: Path, clients: Clients, queues: list[str]) -> None:
        self.stem = f"t{next(_TESTS)}-production-"  # fresh queues and table for each test
        self.clients = clients
        self.sqs = clients.get("sqs")
        for name in queues:
            fifo = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            base, suffix = name.removesuffix(".fifo"), ".fifo" if fifo else ""
            self.sqs.create_queue(QueueName=f"{self.stem}{base}-dlq{suffix}", Attributes=fifo)
            if fifo:
                fifo["ContentBasedDeduplication"] = "true"
            self.sqs.create_queue(QueueName=f"{self.stem}{name}", Attributes=fifo)
        prefix = self.sqs.get_queue_url(QueueName=self.stem + queues[0])["QueueUrl"]
        self.prefix = prefix.removesuffix(queues[0])
        self.flow_table = f"{self.stem}flow"
        create_connections_table(clients.get("dynamodb"), self.flow_table)  # same pk/sk shape
        environ = {
            "LOG_LEVEL": "CRITICAL",
            "QR_QUEUE_URL_PREFIX": self.prefix,
            "QR_FLOW_TABLE": self.flow_table,
        }
        self.runtime = LambdaRuntime(root, environ, clients)

    def close(self) -> None:
        self.runtime.close()
        ports.set_platform(None)

    def receive(self, url: str, visibility: int = 30) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def handler_module(self, queue: str) -> Any:
        found = self.runtime.manifest.queue(queue)
        assert found is not None
        return sys.modules[found.module]

    def record(self, queue: str, m: dict[str, Any]) -> dict[str, Any]:
        """The Lambda event record of a received message."""
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "messageAttributes": {
                k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                for k, v in m.get("MessageAttributes", {}).items()
            },
            "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.stem}{queue}",
            "awsRegion": REGION,
        }

    def deliver(self, queue: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Receive up to 10 messages of ``queue``, run them as one SQS event, delete the ones
        the answer does not report failed (what the event source mapping does)."""
        url = self.prefix + queue
        messages = self.receive(url)
        records = [self.record(queue, m) for m in messages]
        if not records:
            return [], {"batchItemFailures": []}
        answer: dict[str, Any] = self.runtime.dispatch({"Records": records})
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return messages, answer


@pytest.fixture
def aws_of(clients: Clients) -> Iterator[Any]:
    made: list[Aws] = []

    def make(root: Path, queues: list[str]) -> Aws:
        made.append(Aws(root, clients, queues))
        return made[-1]

    yield make
    for aws in made:
        aws.close()


TYPED = {
    "qr.yaml": "name: demo\n",
    "queues/orders.py": """
        from pydantic import BaseModel

        class Order(BaseModel):
            id: int
            sku: str

        def handler(payload: Order):
            assert isinstance(payload, Order)
            return payload.id
    """,
    "queues/points.fifo.py": """
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int

        def handler(payload: Point):
            return payload.x
    """,
}


@pytest.mark.usefixtures("restore_logging")
def test_invalid_payload_goes_to_the_dlq_with_its_error_and_is_reported_done(
    make_project: MakeProject, aws_of: Any
) -> None:
    aws: Aws = aws_of(make_project(TYPED), ["orders", "points.fifo"])
    from qr.runtime import queues

    queues["orders"].push({"id": 1, "sku": "a"})  # validated, sent as JSON
    attributes = {"content_type": {"DataType": "String", "StringValue": "application/json"}}
    aws.sqs.send_message(  # around validation: an older producer
        QueueUrl=aws.prefix + "orders",
        MessageBody='{"id": "x"}',
        MessageAttributes={
            **attributes,
            "user_id": {"DataType": "String", "StringValue": "u1"},
        },
    )
    messages, answer = aws.deliver("orders")
    assert len(messages) == 2
    assert answer == {"batchItemFailures": []}  # both deleted: one done, one dead-lettered
    (dead,) = aws.receive(aws.prefix + "orders-dlq")
    assert dead["Body"] == '{"id": "x"}'
    kept = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert kept["user_id"] == "u1" and kept["content_type"] == "application/json"
    assert "does not validate as Order" in kept["qr_error"]
    assert "valid integer" in kept["qr_error"] and "sku" in kept["qr_error"]
    assert aws.receive(aws.prefix + "orders", visibility=0) == []

    # FIFO: the DLQ copy keeps its group and is deduplicated by the original message id
    aws.sqs.send_message(
        QueueUrl=aws.prefix + "points.fifo",
        MessageBody='{"x": "not a number"}',
        MessageGroupId="g1",
        MessageAttributes=attributes,
    )
    queues["points.fifo"].group("g1").push({"x": 2})
    messages, answer = aws.deliver("points.fifo")
    assert len(messages) == 2 and answer == {"batchItemFailures": []}
    (dead,) = aws.receive(aws.prefix + "points-dlq.fifo")
    assert dead["Attributes"]["MessageGroupId"] == "g1"
    assert dead["Attributes"]["MessageDeduplicationId"] == messages[0]["MessageId"]
    assert "does not validate as Point" in dead["MessageAttributes"]["qr_error"]["StringValue"]


@pytest.mark.usefixtures("restore_logging")
def test_a_dlq_that_cannot_be_reached_leaves_the_job_failed(
    make_project: MakeProject, aws_of: Any, clients: Clients
) -> None:
    aws: Aws = aws_of(make_project(TYPED), ["orders"])
    aws.sqs.delete_queue(QueueUrl=aws.prefix + "orders-dlq")
    aws.sqs.send_message(QueueUrl=aws.prefix + "orders", MessageBody='{"id": "x"}')
    messages, answer = aws.deliver("orders")
    # not lost: reported failed, so SQS keeps it and its redrive policy moves it later
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}


LIMITED = {
    "qr.yaml": "name: demo\n",
    "queues/limited.py": """
        ran = []
        config = {"rate_limit": {"limit": 2, "per": 60, "key": "tenant"}}

        def handler(payload, job):
            ran.append((payload["tenant"], payload["n"], job.received_count))
    """,
}


@pytest.mark.usefixtures("restore_logging")
def test_rate_limit_over_the_limit_comes_back_later_via_visibility(
    make_project: MakeProject, aws_of: Any
) -> None:
    aws: Aws = aws_of(make_project(LIMITED), ["limited"])
    from qr.runtime import queues

    for n in range(3):
        queues["limited"].push({"tenant": "a", "n": n})
    queues["limited"].push({"tenant": "b", "n": 9})
    messages, answer = aws.deliver("limited")
    assert len(messages) == 4
    ran = aws.handler_module("limited").ran
    # two of tenant a (its bucket's burst), and tenant b in its own bucket
    assert sorted(t for t, _, _ in ran) == ["a", "a", "b"]
    assert all(attempt == 1 for _, _, attempt in ran)
    (failure,) = answer["batchItemFailures"]
    held = next(m for m in messages if m["MessageId"] == failure["itemIdentifier"])
    assert json.loads(held["Body"])["tenant"] == "a"
    # not visible again at once: its visibility was set to when a token will be there (~30 s)
    assert aws.receive(aws.prefix + "limited", visibility=0) == []
    items = aws.clients.get("dynamodb").scan(TableName=aws.flow_table)["Items"]
    buckets = {item["pk"]["S"]: float(item["tokens"]["N"]) for item in items}
    assert buckets == {
        "rate#limited#tenant#a": pytest.approx(0, abs=0.01),
        "rate#limited#tenant#b": pytest.approx(1, abs=0.01),
    }


DEBOUNCED = {
    "qr.yaml": "name: demo\n",
    "queues/reindex.py": """
        ran = []

        def handler(payload):
            ran.append(payload)
    """,
}


@pytest.mark.usefixtures("restore_logging")
def test_debounce_runs_the_latest_version_only(make_project: MakeProject, aws_of: Any) -> None:
    import time

    aws: Aws = aws_of(make_project(DEBOUNCED), ["reindex"])
    from qr.runtime import queues

    for v in range(3):
        queues["reindex"].debounce("doc-1", seconds=0.4).push({"v": v})
    item = aws.clients.get("dynamodb").get_item(
        TableName=aws.flow_table,
        Key={"pk": {"S": "debounce#reindex#doc-1"}, "sk": {"S": "version"}},
    )["Item"]
    assert item["version"]["N"] == "3"
    url = aws.prefix + "reindex"
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "3"  # DelaySeconds=1 (rounded up)
    deadline = time.monotonic() + 30
    while (
        aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        != "3"
    ):
        assert time.monotonic() < deadline, "the delayed messages never became visible"
        time.sleep(0.1)
    messages, answer = aws.deliver("reindex")
    assert len(messages) == 3 and answer == {"batchItemFailures": []}  # all deleted
    versions = sorted(
        m["MessageAttributes"]["qr_debounce_version"]["StringValue"] for m in messages
    )
    assert versions == ["1", "2", "3"]
    assert aws.handler_module("reindex").ran == [{"v": 2}]


CHAINED = {
    "qr.yaml": "name: demo\n",
    "queues/fetch.py": """
        from qr.runtime import queues

        def handler(payload, job):
            job.then(queues["publish.fifo"].group("site"), {"url": payload["url"]})
            return queues["resize"].after({"url": payload["url"]})
    """,
    "queues/resize.py": "def handler(payload):\n    return payload\n",
    "queues/publish.fifo.py": "def handler(payload):\n    return payload\n",
}


@pytest.mark.usefixtures("restore_logging")
def test_a_redelivered_job_pushes_each_next_step_once(
    make_project: MakeProject, aws_of: Any
) -> None:
    aws: Aws = aws_of(make_project(CHAINED), ["fetch", "resize", "publish.fifo"])
    from qr.runtime import queues

    queues["fetch"].push({"url": "u"})
    url = aws.prefix + "fetch"
    (message,) = aws.receive(url, visibility=0)
    event = {"Records": [aws.record("fetch", message)]}
    assert aws.runtime.dispatch(event) == {"batchItemFailures": []}
    # the same message again (its delete was lost): it runs again, the steps are not re-pushed
    (again,) = aws.receive(url, visibility=0)
    assert aws.runtime.dispatch({"Records": [aws.record("fetch", again)]}) == {
        "batchItemFailures": []
    }
    resized = aws.receive(aws.prefix + "resize")
    assert [json.loads(m["Body"]) for m in resized] == [{"url": "u"}]
    published = aws.receive(aws.prefix + "publish.fifo")
    assert [json.loads(m["Body"]) for m in published] == [{"url": "u"}]
    assert published[0]["Attributes"]["MessageDeduplicationId"].endswith("-0")
    items = aws.clients.get("dynamodb").scan(TableName=aws.flow_table)["Items"]
    steps = [i for i in items if i["pk"]["S"].startswith("step#")]
    assert [(s["status"]["S"], s["pushed"]["S"]) for s in steps] == [
        ("sent", resized[0]["MessageId"])
    ]
