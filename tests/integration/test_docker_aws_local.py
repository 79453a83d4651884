"""The local AWS endpoints, called by real boto3 clients the way the production adapters call them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.runtime.ports import OutgoingJob

pytestmark = pytest.mark.integration


@dataclass
class _Queues:
    sent: list[OutgoingJob] = field(default_factory=list)

    def send(self, job: OutgoingJob) -> str:
        if job.queue.endswith(".fifo") and job.group_id is None:
            raise ValueError("a FIFO push needs a group")
        self.sent.append(job)
        return f"job-{len(self.sent)}"


@dataclass
class _Sockets:
    open: set[str] = field(default_factory=lambda: {"c1"})
    sent: list[tuple[str, str | bytes]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def send(self, connection_id: str, data: str | bytes) -> bool:
        if connection_id not in self.open:
            return False
        self.sent.append((connection_id, data))
        return True

    def close(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        self.closed.append(connection_id)


@dataclass
class _Env:
    aws: LocalAws
    url: str
    extended: list[tuple[str, float]]

    def client(self, service: str, path: str) -> Any:
        return boto3.session.Session().client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.url + path,
            region_name="us-east-1",
            aws_access_key_id="qrdev",
            aws_secret_access_key="qrdev",
        )


@pytest.fixture
def env() -> Iterator[_Env]:
    extended: list[tuple[str, float]] = []

    def extend(receipt: str, seconds: float) -> bool:
        extended.append((receipt, seconds))
        return receipt == "r-1"

    aws = LocalAws(_Queues(), _Sockets(), "app-dev-", extend)
    server = LocalAwsServer(aws)
    server.start()
    yield _Env(aws, server.url("127.0.0.1"), extended)
    server.close()


def test_sqs_send_message_becomes_a_local_job(env: _Env) -> None:
    sqs = env.client("sqs", "/sqs")
    prefix = env.url + "/sqs/000000000000/app-dev-"
    response = sqs.send_message(
        QueueUrl=prefix + "emails",
        MessageBody='{"to": "a@b.c"}',
        MessageAttributes={
            "content_type": {"DataType": "String", "StringValue": "application/json"},
            "user_id": {"DataType": "String", "StringValue": "u1"},
            "param_id": {"DataType": "String", "StringValue": "5"},
        },
        DelaySeconds=3,
    )
    assert response["MessageId"] == "job-1"
    queues = env.aws.queues
    assert isinstance(queues, _Queues)
    assert queues.sent == [
        OutgoingJob(
            "emails",
            '{"to": "a@b.c"}',
            "application/json",
            delay=3,
            user_id="u1",
            params={"id": "5"},
        )
    ]
    sqs.send_message(
        QueueUrl=prefix + "orders.fifo",
        MessageBody="x",
        MessageGroupId="g",
        MessageDeduplicationId="d",
    )
    assert (queues.sent[1].queue, queues.sent[1].group_id) == ("orders.fifo", "g")
    with pytest.raises(ClientError) as failure:
        sqs.send_message(QueueUrl=prefix + "orders.fifo", MessageBody="x")
    assert "needs a group" in str(failure.value)
    with pytest.raises(ClientError) as failure:
        sqs.send_message(QueueUrl=env.url + "/sqs/000000000000/other-queue", MessageBody="x")
    assert failure.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_sqs_change_visibility_extends_the_lease(env: _Env) -> None:
    sqs = env.client("sqs", "/sqs")
    url = env.url + "/sqs/000000000000/app-dev-emails"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="r-1", VisibilityTimeout=60)
    assert env.extended == [("r-1", 60.0)]
    with pytest.raises(ClientError) as failure:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="r-2", VisibilityTimeout=60)
    assert failure.value.response["Error"]["Code"] == "MessageNotInflight"


def test_management_api_sends_and_closes(env: _Env) -> None:
    api = env.client("apigatewaymanagementapi", "/ws")
    api.post_to_connection(ConnectionId="c1", Data=b'{"hello": 1}')
    api.post_to_connection(ConnectionId="c1", Data=b"\xff\x00")
    sockets = env.aws.sockets
    assert isinstance(sockets, _Sockets)
    assert sockets.sent == [("c1", '{"hello": 1}'), ("c1", b"\xff\x00")]
    with pytest.raises(ClientError) as failure:
        api.post_to_connection(ConnectionId="gone", Data=b"x")
    assert failure.value.response["Error"]["Code"] == "GoneException"
    api.delete_connection(ConnectionId="c1")
    assert sockets.closed == ["c1"]


def test_dynamodb_calls_of_the_connection_registry(env: _Env) -> None:
    db = env.client("dynamodb", "/dynamodb")
    table = "app-dev-connections"
    db.put_item(TableName=table, Item={"pk": {"S": "conn#1"}, "sk": {"S": "conn"}})
    db.update_item(
        TableName=table,
        Key={"pk": {"S": "conn#1"}, "sk": {"S": "conn"}},
        UpdateExpression="SET user_id = :user, #ttl = :ttl",
        ExpressionAttributeNames={"#ttl": "expires_at"},
        ExpressionAttributeValues={":user": {"S": "u1"}, ":ttl": {"N": "99"}},
    )
    for conn in ("conn#1", "conn#2"):
        db.put_item(TableName=table, Item={"pk": {"S": "user#u1"}, "sk": {"S": conn}})
    item = db.get_item(TableName=table, Key={"pk": {"S": "conn#1"}, "sk": {"S": "conn"}})["Item"]
    assert item["user_id"] == {"S": "u1"} and item["expires_at"] == {"N": "99"}
    page = db.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "user#u1"}},
        ConsistentRead=True,
    )
    assert [i["sk"]["S"] for i in page["Items"]] == ["conn#1", "conn#2"]
    old = db.delete_item(
        TableName=table, Key={"pk": {"S": "conn#1"}, "sk": {"S": "conn"}}, ReturnValues="ALL_OLD"
    )
    assert old["Attributes"]["user_id"] == {"S": "u1"}
    missing = db.get_item(TableName=table, Key={"pk": {"S": "conn#1"}, "sk": {"S": "conn"}})
    assert "Item" not in missing
    with pytest.raises(ClientError) as failure:
        db.scan(TableName=table)
    assert "does not serve DynamoDB Scan" in str(failure.value)
