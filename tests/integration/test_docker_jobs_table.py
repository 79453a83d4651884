"""``qr dev --docker``'s jobs table: the function's ``DynamoJobStore`` (real boto3, the local
endpoint) writing the dev server's job state while the engine runs the queue.

The shared contract (tests/integration/test_job_stores.py) covers each request alone; these
tests cover what happens around it under ``--docker``: the engine's claim and the function's
``start``, a failure both sides record, a cancel from the host seen by the function, and the
requests the endpoint refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.cli.docker.jobs_table import LocalJobsTable
from qr.runtime.aws.job_state import DynamoJobStore, JobStateTooLarge
from qr.runtime.jobs import MAX_ITEM_BYTES
from qr.runtime.local.connections import LocalSockets
from qr.runtime.local.engine import Claimed, Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.local.worker import LocalQueuePort
from qr.runtime.manifest import Backoff
from qr.runtime.ports import JobStart, OutgoingJob
from tests.integration.lambda_support import moto_clients
from tests.integration.test_job_stores import Clock

pytestmark = pytest.mark.integration

TABLE = "app-dev-jobs"
BACKOFF = Backoff("exponential", 2, 300, jitter=False)


@dataclass
class Dev:
    engine: Engine
    host: SqliteJobStore
    """What ``qr jobs``, the dashboard and the status route of plain ``qr dev`` read."""
    function: DynamoJobStore
    """The function's store in the container, through the local endpoint."""
    url: str
    clock: Clock

    def claim(self) -> Claimed:
        (claimed,) = self.engine.claim("q", 1, 30)
        return claimed

    def start(self, claimed: Claimed) -> bool:
        return self.function.start(
            JobStart(
                claimed.job_id,
                "q",
                claimed.received_count,
                claimed.queued_ms / 1000,
                claimed.user_id,
                60,
            )
        )


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    clock = Clock()
    engine = Engine(tmp_path / "queues.db", clock=clock)
    engine.configure_keep({"q": 60})
    host = SqliteJobStore(engine)
    aws = LocalAws(
        LocalQueuePort(engine), LocalSockets(), "app-dev-", jobs=LocalJobsTable(TABLE, host)
    )
    server = LocalAwsServer(aws)
    server.start()
    url = server.url("127.0.0.1") + "/dynamodb"
    try:
        yield Dev(engine, host, DynamoJobStore(TABLE, moto_clients(url), clock=clock), url, clock)
    finally:
        server.close()
        engine.close()


def push(dev: Dev, delay: float = 0) -> str:
    return dev.engine.push(OutgoingJob("q", '{"n": 1}', "application/json", delay=delay)).job_id


def test_the_function_writes_the_state_the_host_reads(dev: Dev) -> None:
    job_id = push(dev)
    claimed = dev.claim()
    assert dev.start(claimed)  # the claim already recorded running: this confirms it
    assert not dev.function.progress(job_id, 0.4, "four of ten")
    state = dev.host.get(job_id)
    assert state is not None
    assert (state.status, state.attempts, state.progress, state.progress_message) == (
        "running",
        1,
        0.4,
        "four of ten",
    )
    assert dev.function.finish(job_id, "succeeded", keep=60, result={"done": 10})
    assert dev.engine.ack(claimed)  # the worker's ack leaves the function's outcome as it is
    state = dev.host.get(job_id)
    assert state is not None and (state.status, state.result) == ("succeeded", {"done": 10})
    assert dev.function.get(job_id) == state  # jobs.get in the container (the status route)
    dev.clock.now += 61  # retention from the function's keep, counted from the finish
    assert dev.host.get(job_id) is None


def test_a_cancel_from_the_host_reaches_the_running_function(dev: Dev) -> None:
    job_id = push(dev)
    claimed = dev.claim()
    assert dev.start(claimed)
    cancelled = dev.host.cancel(job_id)  # qr jobs cancel / the dashboard
    assert cancelled is not None and cancelled.cancel_requested
    assert dev.function.cancel_requested(job_id)  # job.extend() and throttled progress
    assert dev.function.progress(job_id, 0.5, None)  # job.progress()
    assert dev.function.finish(job_id, "cancelled", error={"type": "E", "message": "stopped"})
    assert dev.engine.fail(claimed, "E: stopped", max_attempts=3, backoff=BACKOFF) == "cancelled"
    state = dev.host.get(job_id)
    assert state is not None and (state.status, state.error) == (
        "cancelled",
        {"type": "E", "message": "stopped"},
    )


def test_a_job_cancelled_while_queued_is_refused_and_never_claimed(dev: Dev) -> None:
    job_id = push(dev, delay=30)
    state = dev.function.cancel(job_id)  # jobs.cancel() in a container
    assert state is not None and state.status == "cancelled"
    dev.clock.now += 31
    assert dev.engine.claim("q", 1, 30) == []
    assert dev.function.cancel("nope") is None  # an unknown id stays unknown


def test_a_failure_the_function_recorded_is_kept_once(dev: Dev) -> None:
    job_id = push(dev)
    claimed = dev.claim()
    assert dev.start(claimed)
    error = {"type": "ValueError", "message": "bad input"}
    assert dev.function.finish(job_id, "failed", error=error)
    outcome = dev.engine.fail(
        claimed, "ValueError: bad input", max_attempts=2, backoff=BACKOFF, recorded=True
    )
    assert outcome == "retry"
    state = dev.host.get(job_id)
    assert state is not None and (state.status, state.error) == ("failed", error)
    detail = dev.engine.job_detail(job_id)
    assert detail is not None and len(detail["attempts"]) == 1  # not once per writer
    dev.clock.now += 3  # the backoff
    second = dev.claim()
    assert dev.start(second)
    # the container is killed (platform timeout): the function records nothing, the engine does
    timeout = "the function did not answer within 30 s"
    assert dev.engine.fail(second, timeout, max_attempts=2, backoff=BACKOFF) == "dead"
    state = dev.host.get(job_id)
    assert state is not None and (state.status, state.attempts) == ("dead", 2)
    assert state.error == {"type": "Error", "message": timeout}
    dev.clock.now += 59  # kept for the queue's 60 s: the failed attempt left that alone
    assert dev.host.get(job_id) is not None
    dev.clock.now += 2
    assert dev.host.get(job_id) is None


def test_an_item_over_400_kb_is_refused_as_dynamodb_does(dev: Dev) -> None:
    job_id = push(dev)
    assert dev.start(dev.claim())
    with pytest.raises(JobStateTooLarge, match="400 KB"):
        dev.function.finish(job_id, "succeeded", result="x" * MAX_ITEM_BYTES)
    state = dev.host.get(job_id)
    assert state is not None and state.status == "running"


@pytest.mark.parametrize(
    ("action", "request_"),
    [
        ("PutItem", {"Item": {"job_id": {"S": "j"}}}),
        ("DeleteItem", {"Key": {"job_id": {"S": "j"}}}),
        ("Query", {"KeyConditionExpression": "job_id = :j"}),
    ],
)
def test_other_requests_on_the_jobs_table_are_refused_by_name(
    dev: Dev, action: str, request_: dict[str, object]
) -> None:
    client = dev.function._db()
    call = getattr(client, "".join("_" + c.lower() if c.isupper() else c for c in action)[1:])
    with pytest.raises(ClientError) as caught:
        call(TableName=TABLE, **request_)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert f"does not serve DynamoDB {action} on the jobs table" in str(caught.value)


def test_an_update_of_another_shape_is_refused(dev: Dev) -> None:
    with pytest.raises(ClientError) as caught:
        dev.function._db().update_item(
            TableName=TABLE,
            Key={"job_id": {"S": "j"}},
            UpdateExpression="SET #n = :v",
            ExpressionAttributeNames={"#n": "note"},
            ExpressionAttributeValues={":v": {"S": "x"}},
        )
    assert "does not serve this UpdateItem" in str(caught.value)
    assert "SET note = :v" in str(caught.value)
