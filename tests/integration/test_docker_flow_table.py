"""``qr dev --docker``'s flow table: the function's flow adapters (real boto3, the local endpoint)
against the dev server's engine, each request shape they send.

* debounce: ``SqsQueues`` with ``DynamoDebounce`` bumps the key's version (``UpdateItem``) and
  sends the message with ``qr_debounce``; the engine replaces the key's waiting job, as a
  debounced push under plain ``qr dev`` does, and ``latest`` (``GetItem``) reads the version;
* rate limits: the engine's claim takes the token; the function's ``DynamoBuckets.take``
  (``GetItem`` + conditional ``PutItem``) admits without taking a second one;
* chain steps: ``DynamoSteps`` (conditional ``PutItem``, ``GetItem``, ``UpdateItem``) reads and
  writes the engine's step records, the ones plain ``qr dev`` keeps;
* anything else on the table is refused by name.

The ``BucketStore`` contract (tests/integration/test_flow_stores.py) is not run through the
endpoint: the endpoint's buckets deliberately never refuse (the engine's claim enforces the limit
and counts no attempt, as under plain ``qr dev``); these tests show both halves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.cli.docker.events import ACCOUNT
from qr.cli.docker.flow_table import LocalFlowTable
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.flow import DynamoBuckets, DynamoDebounce, DynamoSteps
from qr.runtime.aws.sqs import SqsQueues
from qr.runtime.flow import RateLimit
from qr.runtime.local.connections import LocalSockets
from qr.runtime.local.engine import Engine
from qr.runtime.local.flow import LocalSteps
from qr.runtime.local.worker import LocalQueuePort
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import JSON
from tests.integration.test_job_stores import Clock

pytestmark = pytest.mark.integration

TABLE = "app-dev-flow"


@dataclass
class Dev:
    engine: Engine
    clients: Clients
    """The function's boto3 clients, pointed at the local endpoint (SQS and DynamoDB)."""
    clock: Clock
    url: str

    @property
    def dynamodb(self) -> Any:
        return self.clients.get("dynamodb")

    def queues(self) -> SqsQueues:
        """The function's ``QueuePort`` with the flow adapters, as ``lambda_platform`` wires it."""
        return SqsQueues(
            f"{self.url}/sqs/{ACCOUNT}/app-dev-",
            self.clients,
            DynamoDebounce(TABLE, self.clients, clock=self.clock),
            DynamoSteps(TABLE, self.clients, clock=self.clock),
        )


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    clock = Clock()
    engine = Engine(tmp_path / "queues.db", clock=clock)
    engine.configure_keep({"q": 60})
    aws = LocalAws(
        LocalQueuePort(engine),
        LocalSockets(),
        "app-dev-",
        flow=LocalFlowTable(TABLE, LocalSteps(engine)),
    )
    server = LocalAwsServer(aws)
    server.start()
    url = server.url("127.0.0.1")

    def factory(service: str, **kwargs: Any) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=f"{url}/{service}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )

    try:
        yield Dev(engine, Clients(factory), clock, url)
    finally:
        server.close()
        engine.close()


def _job(payload: str = "{}", **kw: Any) -> OutgoingJob:
    return OutgoingJob("q", payload, JSON, **kw)


def _error(call: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value


def test_debounced_pushes_replace_the_waiting_job_as_under_plain_qr_dev(dev: Dev) -> None:
    queues = dev.queues()
    ids = [queues.send(_job(f'{{"v":{v}}}', delay=1.5, debounce_key="doc#1")) for v in range(3)]
    other = queues.send(_job('{"v":0}', delay=2, debounce_key="doc#2"))
    (stats,) = dev.engine.stats(["q"])
    assert (stats.depth, stats.delayed) == (0, 2)  # one waiting job per key
    for replaced in ids[:2]:
        state = dev.engine.job_state(replaced)
        assert state is not None and state.status == "cancelled"
        assert state.error == {"type": "Debounced", "message": "replaced by a later push"}
    debounce = DynamoDebounce(TABLE, dev.clients, clock=dev.clock)
    assert debounce.latest("q", "doc#1") == 3  # the key's versions, as the messages carry them
    assert debounce.latest("q", "doc#2") == 1
    assert debounce.latest("q", "never") is None
    dev.clock.now += 1.9  # the adapter rounds a window up to whole seconds (SQS DelaySeconds)
    assert dev.engine.claim("q", 10, 30) == []
    dev.clock.now += 0.2
    claimed = dev.engine.claim("q", 10, 30)
    assert sorted((c.job_id, c.body) for c in claimed) == sorted(
        [(ids[2], '{"v":2}'), (other, '{"v":0}')]
    )


def test_the_claim_takes_the_token_and_the_functions_check_admits(dev: Dev) -> None:
    limit = RateLimit(1, 60)
    for n in range(3):
        dev.engine.push(_job(str(n)))
    (claimed,) = dev.engine.claim("q", 10, 30, rate_limit=limit)  # the others wait, unreceived
    buckets = DynamoBuckets(TABLE, dev.clients, clock=dev.clock)
    # the function checks the job it was handed: no second token, no refusal
    assert buckets.take("q##", limit) == 0.0
    assert buckets.take("q##", limit) == 0.0
    assert dev.engine.claim("q", 10, 30, rate_limit=limit) == []  # the engine's bucket rules
    (stats,) = dev.engine.stats(["q"])
    assert (stats.in_flight, stats.delayed) == (1, 2)
    assert dev.engine.ack(claimed)
    dev.clock.now += 60
    (second,) = dev.engine.claim("q", 10, 30, rate_limit=limit)
    assert second.received_count == 1  # postponed without an attempt counted
    key = {"pk": {"S": "rate#q##"}, "sk": {"S": "bucket"}}
    assert "Item" not in dev.dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    stale = _error(
        lambda: dev.dynamodb.put_item(
            TableName=TABLE,
            Item={**key, "tokens": {"N": "0"}, "version": {"N": "2"}},
            ConditionExpression="version = :seen",
            ExpressionAttributeValues={":seen": {"N": "1"}},
        )
    )
    assert stale.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_a_chain_step_is_pushed_once_per_key(dev: Dev) -> None:
    queues = dev.queues()
    first = queues.send_steps("j1", [_job("1"), _job("2")])
    again = queues.send_steps("j1", [_job("1"), _job("2")])  # the job delivered again
    assert again == first
    assert dev.engine.stats(["q"])[0].depth == 2
    item = dev.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "step#j1-0"}, "sk": {"S": "step"}}, ConsistentRead=True
    )["Item"]
    assert (item["status"]["S"], item["pushed"]["S"]) == ("sent", first[0])
    steps = DynamoSteps(TABLE, dev.clients, clock=dev.clock)
    assert steps.begin("j2-0") is None  # new: send it
    assert steps.begin("j2-0") is None  # pending is not kept: sent again, as on AWS
    steps.done("j2-0", "pushed-id")
    assert steps.begin("j2-0") == "pushed-id"


def test_steps_recorded_by_the_engine_are_the_functions(dev: Dev) -> None:
    """A step pushed under plain ``qr dev`` (same database) is not pushed again by the function."""
    (pushed,) = dev.engine.push_steps("j1", [_job("1")])
    assert dev.queues().send_steps("j1", [_job("1")]) == [pushed]
    assert dev.engine.stats(["q"])[0].depth == 1


@pytest.mark.parametrize(
    ("action", "request_"),
    [
        ("delete_item", {"Key": {"pk": {"S": "rate#q##"}, "sk": {"S": "bucket"}}}),
        (
            "update_item",
            {
                "Key": {"pk": {"S": "rate#q##"}, "sk": {"S": "bucket"}},
                "UpdateExpression": "SET tokens = :t",
                "ExpressionAttributeValues": {":t": {"N": "1"}},
            },
        ),
        (
            "put_item",
            {
                "Item": {"pk": {"S": "rate#q##"}, "sk": {"S": "bucket"}},
                "ConditionExpression": "attribute_exists(pk)",
            },
        ),
        (
            "update_item",
            {
                "Key": {"pk": {"S": "debounce#q#k"}, "sk": {"S": "version"}},
                "UpdateExpression": "SET version = :v",
                "ExpressionAttributeValues": {":v": {"N": "7"}},
            },
        ),
        ("put_item", {"Item": {"pk": {"S": "step#j1-0"}, "sk": {"S": "step"}}}),
        (
            "update_item",
            {
                "Key": {"pk": {"S": "step#j1-0"}, "sk": {"S": "step"}},
                "UpdateExpression": "SET pushed = :p",
                "ExpressionAttributeValues": {":p": {"S": "x"}},
            },
        ),
        ("get_item", {"Key": {"pk": {"S": "other#x"}, "sk": {"S": "y"}}}),
        ("get_item", {"Key": {"job_id": {"S": "j1"}}}),
    ],
)
def test_other_requests_are_refused_by_name(
    dev: Dev, action: str, request_: dict[str, Any]
) -> None:
    error = _error(lambda: getattr(dev.dynamodb, action)(TableName=TABLE, **request_))
    assert error.response["Error"]["Code"] == "ValidationException"
    message = error.response["Error"]["Message"]
    assert f"on the flow table {TABLE}" in message or "flow table's key" in message
    assert dev.engine.stats(["q"])[0].depth == 0


def test_query_and_scan_are_refused_by_name(dev: Dev) -> None:
    query = _error(
        lambda: dev.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "rate#q##"}},
        )
    )
    assert "does not serve DynamoDB Query" in query.response["Error"]["Message"]
    scan = _error(lambda: dev.dynamodb.scan(TableName=TABLE))
    assert "does not serve DynamoDB Scan" in scan.response["Error"]["Message"]
