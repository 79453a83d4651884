"""The AWS adapters against a moto server (SQS incl. FIFO, API Gateway management API, DynamoDB, SSM)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from moto.backends import get_backend

from qr.runtime.aws import lambda_platform
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.apigateway import ApiGatewaySockets
from qr.runtime.aws.dynamodb import TTL_ATTRIBUTE, DynamoConnections
from qr.runtime.aws.sqs import SqsQueues
from qr.runtime.aws.ssm import load_parameters
from qr.runtime.ports import OutgoingJob
from tests.integration.lambda_support import create_connections_table

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _queue(clients: Clients, name: str, **attributes: str) -> str:
    url: str = clients.get("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def _receive(clients: Clients, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        clients.get("sqs")
        .receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        .get("Messages", [])
    )
    return messages


def test_sqs_send_standard_with_attributes_and_delay(clients: Clients) -> None:
    url = _queue(clients, "app-prod-emails")
    queues = SqsQueues(url.removesuffix("emails"), clients)
    job = OutgoingJob(
        "emails",
        '{"to": "a@b.c"}',
        "application/json",
        user_id="u1",
        params={"kind": "welcome"},
    )
    job_id = queues.send(job)
    queues.send(OutgoingJob("emails", "later", "text/plain; charset=utf-8", delay=2.4))
    (message,) = _receive(clients, url)  # the delayed one is not visible yet
    assert message["MessageId"] == job_id
    assert message["Body"] == '{"to": "a@b.c"}'
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "content_type": "application/json",
        "user_id": "u1",
        "param_kind": "welcome",
    }
    assert queues.name_of(f"arn:aws:sqs:{REGION}:123456789012:app-prod-emails") == "emails"
    assert queues.name_of(f"arn:aws:sqs:{REGION}:123456789012:other-emails") is None

    # visibility: 0 makes a received message visible again at once
    queues.change_visibility("emails", message["ReceiptHandle"], 0)
    (again,) = _receive(clients, url)
    assert again["MessageId"] == job_id
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_sqs_send_fifo_groups_and_dedupe(clients: Clients) -> None:
    url = _queue(
        clients,
        "app-prod-orders.fifo",
        FifoQueue="true",
        ContentBasedDeduplication="true",
    )
    queues = SqsQueues(url.removesuffix("orders.fifo"), clients)
    queues.send(OutgoingJob("orders.fifo", "a", "text/plain", group_id="g1", dedupe_id="d1"))
    queues.send(OutgoingJob("orders.fifo", "b", "text/plain", group_id="g1", dedupe_id="d1"))
    queues.send(OutgoingJob("orders.fifo", "c", "text/plain", group_id="g2"))
    messages = _receive(clients, url)  # "b" had the dedupe id of "a": not enqueued
    assert sorted(m["Body"] for m in messages) == ["a", "c"]
    by_body = {m["Body"]: m["Attributes"] for m in messages}
    assert by_body["a"]["MessageGroupId"] == "g1"
    assert by_body["a"]["MessageDeduplicationId"] == "d1"
    assert by_body["c"]["MessageGroupId"] == "g2"


def test_dynamodb_registry_and_presence(clients: Clients) -> None:
    table = "app-prod-connections"
    create_connections_table(clients.get("dynamodb"), table)
    now = [1_800_000_000.0]
    registry = DynamoConnections(table, clients, clock=lambda: now[0], ttl=100)
    registry.connect("c1")
    registry.connect("c2")
    assert registry.user_of("c1") is None
    assert registry.bind_user("c1", "alice") is True  # first connection: came online
    assert registry.bind_user("c2", "alice") is False
    assert registry.user_of("c2") == "alice"
    assert sorted(registry.connections("alice")) == ["c1", "c2"]
    assert registry.is_online("alice") and not registry.is_online("bob")
    item = clients.get("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "conn#c1"}, "sk": {"S": "conn"}}
    )["Item"]
    assert item[TTL_ATTRIBUTE]["N"] == str(1_800_000_100)

    assert registry.disconnect("c1") == ("alice", False)
    assert registry.disconnect("c2") == ("alice", True)  # last one: went offline
    assert registry.disconnect("c2") == (None, False)
    assert not registry.is_online("alice")

    # an item past its TTL counts as gone even before DynamoDB deletes it
    registry.connect("c3")
    registry.bind_user("c3", "carol")
    now[0] += 101
    assert registry.connections("carol") == []
    assert registry.user_of("c3") is None


class _Registry:
    """Records what the socket adapter asks of the registry."""

    def __init__(self) -> None:
        self.disconnected: list[str] = []

    def disconnect(self, connection_id: str) -> tuple[str | None, bool]:
        self.disconnected.append(connection_id)
        return None, False


def test_apigateway_post_to_connection_and_close(clients: Clients, moto_url: str) -> None:
    registry = _Registry()
    sockets = ApiGatewaySockets(moto_url, registry, clients)  # type: ignore[arg-type]
    assert sockets.send("conn1", '{"hi": 1}') is True
    assert sockets.send("conn1", b"\x00raw") is True
    backend = get_backend("apigatewaymanagementapi")["123456789012"][REGION]
    assert backend.connections["conn1"].data == b'{"hi": 1}\x00raw'
    sockets.close("conn1")
    assert "conn1" not in backend.connections
    assert registry.disconnected == ["conn1"]


class _GoneHandler(BaseHTTPRequestHandler):
    """API Gateway's answer for a connection that has closed (moto never sends it)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"message": None}).encode()
        self.send_response(410)
        self.send_header("x-amzn-ErrorType", "GoneException")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_apigateway_gone_connection_is_forgotten(clients: Clients) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GoneHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        registry = _Registry()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/production"
        sockets = ApiGatewaySockets(endpoint, registry, clients)  # type: ignore[arg-type]
        assert sockets.send("gone1", "hello") is False
        assert registry.disconnected == ["gone1"]
    finally:
        server.shutdown()
        server.server_close()


def test_ssm_parameters_into_environ_with_default_clients(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No factory: boto3 itself, pointed at moto through AWS_ENDPOINT_URL (as in the tests of the bundle)."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    ssm = Clients().get("ssm")
    ssm.put_parameter(Name="/qr/app/prod/API_KEY", Value="s3cret", Type="SecureString")
    ssm.put_parameter(Name="/qr/app/prod/GREETING", Value="Hi", Type="String")
    ssm.put_parameter(Name="/qr/app/other/NOPE", Value="x", Type="String")
    for index in range(12):  # more than one page
        ssm.put_parameter(Name=f"/qr/app/prod/K{index:02}", Value=str(index), Type="String")
    environ = {"GREETING": "from terraform"}
    names = load_parameters("/qr/app/prod/", Clients(), environ)
    assert "API_KEY" in names and len(names) == 14
    assert environ["API_KEY"] == "s3cret"  # decrypted
    assert environ["GREETING"] == "Hi"
    assert environ["K11"] == "11"
    assert "NOPE" not in environ


def test_lambda_platform_wires_the_adapters_from_the_environment(clients: Clients) -> None:
    platform = lambda_platform(
        {
            "QR_QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/1/app-prod-",
            "QR_CONNECTIONS_TABLE": "app-prod-connections",
            "QR_WS_ENDPOINT": "https://abc.execute-api.us-east-1.amazonaws.com/production",
            "QR_BASE_URL": "https://api.example.com",
        },
        clients,
    )
    assert platform.name == "lambda"
    assert isinstance(platform.queues, SqsQueues)
    assert platform.queues.url("emails") == "https://sqs.us-east-1.amazonaws.com/1/app-prod-emails"
    assert isinstance(platform.connections, DynamoConnections)
    assert platform.connections.table == "app-prod-connections"
    assert platform.base_url == "https://api.example.com"
