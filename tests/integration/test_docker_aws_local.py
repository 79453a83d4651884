"""The local AWS endpoints, called by real boto3 clients the way the production adapters call them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.ssm import load_parameters
from qr.runtime.ports import OutgoingJob

pytestmark = pytest.mark.integration
SSM_PATH = "/qr/app/dev/"


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
    parameters: dict[str, str]

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

    parameters: dict[str, str] = {}
    aws = LocalAws(
        _Queues(), _Sockets(), "app-dev-", extend, ssm_path=SSM_PATH, parameters=lambda: parameters
    )
    server = LocalAwsServer(aws)
    server.start()
    yield _Env(aws, server.url("127.0.0.1"), extended, parameters)
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


def test_ssm_parameters_by_path_serve_the_dev_environment_in_pages(env: _Env) -> None:
    env.parameters.update({f"KEY_{n:02}": f"value {n}" for n in range(12)})
    env.parameters["nested/DEEP"] = "deep"
    ssm = env.client("ssm", "/ssm")
    paginator = ssm.get_paginator("get_parameters_by_path")
    pages = list(paginator.paginate(Path=SSM_PATH, Recursive=True, WithDecryption=True))
    assert [len(page["Parameters"]) for page in pages] == [10, 3]
    found = {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}
    assert found[SSM_PATH + "KEY_11"] == "value 11"
    assert found[SSM_PATH + "nested/DEEP"] == "deep"
    assert len(found) == 13
    first = pages[0]["Parameters"][0]
    assert first["Type"] == "String"
    assert first["ARN"] == f"arn:aws:ssm:us-east-1:000000000000:parameter{SSM_PATH}KEY_00"
    flat = ssm.get_parameters_by_path(Path=SSM_PATH.rstrip("/"), MaxResults=2)
    assert [p["Name"] for p in flat["Parameters"]] == [SSM_PATH + "KEY_00", SSM_PATH + "KEY_01"]
    rest = ssm.get_parameters_by_path(Path=SSM_PATH, NextToken=flat["NextToken"], MaxResults=10)
    assert SSM_PATH + "nested/DEEP" not in {p["Name"] for p in rest["Parameters"]}
    assert ssm.get_parameters_by_path(Path="/qr/other/dev/")["Parameters"] == []
    with pytest.raises(ClientError) as failure:
        ssm.get_parameters_by_path(Path=SSM_PATH, NextToken="bogus")
    assert failure.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as failure:
        ssm.get_parameter(Name=SSM_PATH + "KEY_00")
    assert "does not serve SSM GetParameter" in str(failure.value)


def test_the_runtime_ssm_adapter_loads_the_dev_environment(
    env: _Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_parameters`` as the entry point calls it at cold start, through AWS_ENDPOINT_URL_SSM."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", env.url + "/ssm")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "qr-dev")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "qr-dev")
    env.parameters.update({f"VAR_{n:02}": str(n) for n in range(11)})
    env.parameters["GREETING"] = "Hi"
    environ = {"GREETING": "from the function's variables"}
    names = load_parameters(SSM_PATH, Clients(), environ)
    assert names == sorted(env.parameters)
    assert environ["GREETING"] == "Hi"  # a parameter wins, as on Lambda
    assert environ["VAR_10"] == "10"
    env.parameters["GREETING"] = "changed in .env"  # read again at the next cold start
    assert load_parameters(SSM_PATH, Clients(), environ) == names
    assert environ["GREETING"] == "changed in .env"
