"""The JobStore contract, once, against every adapter: SQLite (local) and DynamoDB (a moto server).

What the consumer writes (``start``/``finish``), what readers see (``get``/``list``), progress,
cancellation and retention behave the same on both platforms. Before its first receive a job is
the one documented difference: locally its queue row reads ``queued``/``delayed``, on AWS a push
writes no state (``get`` is ``None``); either way a job cancelled then is refused at its start.
A third run drives the DynamoDB adapter against ``qr dev --docker``'s local endpoint, which
applies its requests to the SQLite job state (``qr.cli.docker.jobs_table``): what the function in
a container writes and reads must mean the same there, local differences included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.cli.docker.jobs_table import LocalJobsTable
from qr.runtime.aws.job_state import DynamoJobStore
from qr.runtime.local.connections import LocalSockets
from qr.runtime.local.engine import Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.local.worker import LocalQueuePort
from qr.runtime.ports import JobStart, JobStore, OutgoingJob
from qr.runtime.queues import JSON
from tests.integration.lambda_support import create_jobs_table, moto_clients

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "dynamodb", "docker-endpoint"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[JobStore]:
    if request.param == "sqlite":
        engine = Engine(tmp_path / "queues.db", clock=clock)
        yield SqliteJobStore(engine)
        engine.close()
        return
    if request.param == "docker-endpoint":
        yield from docker_endpoint_store(tmp_path, clock)
        return
    clients = moto_clients(request.getfixturevalue("moto_url"))
    table = f"jobs-{uuid.uuid4().hex[:8]}"
    create_jobs_table(clients.get("dynamodb"), table)
    yield DynamoJobStore(table, clients, clock=clock)


class EndpointJobStore(DynamoJobStore):
    """``DynamoJobStore`` against ``qr dev --docker``'s local endpoint, over ``engine``'s state."""

    engine: Engine


def docker_endpoint_store(tmp_path: Path, clock: Clock) -> Iterator[DynamoJobStore]:
    engine = Engine(tmp_path / "queues.db", clock=clock)
    table = LocalJobsTable("app-dev-jobs", SqliteJobStore(engine))
    server = LocalAwsServer(
        LocalAws(LocalQueuePort(engine), LocalSockets(), "app-dev-", jobs=table)
    )
    server.start()
    try:
        clients = moto_clients(server.url("127.0.0.1") + "/dynamodb")
        store = EndpointJobStore("app-dev-jobs", clients, clock=clock)
        store.engine = engine
        yield store
    finally:
        server.close()
        engine.close()


def start(store: JobStore, job_id: str = "j1", attempt: int = 1, **kw: object) -> bool:
    values: dict[str, object] = {"queue": "q", "queued_at": 1_799_999_990.0, "user": "u1"}
    values.update(kw)
    return store.start(JobStart(job_id, attempt=attempt, **values))  # type: ignore[arg-type]


def push(store: JobStore, *, delay: float = 0.0) -> str:
    """What a push leaves behind: locally a queue row (no state row), on AWS an SQS message only."""
    if isinstance(store, SqliteJobStore | EndpointJobStore):
        job = OutgoingJob("q", "{}", JSON, delay=delay, user_id="u1")
        return store.engine.push(job).job_id
    return str(uuid.uuid4())


def is_local(store: JobStore) -> bool:
    """Over ``qr dev``'s SQLite state: directly, or through the ``--docker`` endpoint."""
    return isinstance(store, SqliteJobStore | EndpointJobStore)


def test_unknown_ids(store: JobStore) -> None:
    assert store.get("nope") is None
    assert store.cancel("nope") is None
    assert not store.cancel_requested("nope")
    assert not store.progress("nope", 0.5, None)


def test_start_then_succeed(store: JobStore, clock: Clock) -> None:
    assert start(store)
    state = store.get("j1")
    assert state is not None
    assert (state.status, state.queue, state.attempts, state.user) == ("running", "q", 1, "u1")
    assert state.queued_at == 1_799_999_990.0 and state.started_at == clock.now
    clock.now += 2
    assert store.finish("j1", "succeeded", result={"n": [1, 2]}, progress=(1.0, "all"))
    state = store.get("j1")
    assert state is not None
    assert (state.status, state.result, state.error) == ("succeeded", {"n": [1, 2]}, None)
    assert (state.progress, state.progress_message) == (1.0, "all")
    assert state.finished_at == clock.now and state.done


def test_a_late_duplicate_never_moves_a_finished_job_back(store: JobStore) -> None:
    start(store)
    store.finish("j1", "succeeded", result=1)
    assert not start(store, attempt=2)  # a duplicate delivery: do not run it
    assert not store.finish("j1", "failed", error={"type": "E", "message": "late"})
    state = store.get("j1")
    assert state is not None and (state.status, state.result, state.attempts) == (
        "succeeded",
        1,
        1,
    )


def test_failed_then_retried_then_dead(store: JobStore) -> None:
    start(store)
    error = {"type": "ValueError", "message": "boom"}
    assert store.finish("j1", "failed", error=error)
    state = store.get("j1")
    assert state is not None and (state.status, state.error, state.done) == (
        "failed",
        error,
        False,
    )
    assert state.finished_at is None
    assert start(store, attempt=2)
    state = store.get("j1")
    assert state is not None and (state.status, state.attempts) == ("running", 2)
    assert state.error == error  # the last error stays visible while it retries
    assert store.finish("j1", "dead", error={"type": "ValueError", "message": "again"})
    state = store.get("j1")
    assert state is not None and state.status == "dead" and state.error is not None
    assert state.error["message"] == "again"


def test_progress_while_running_only(store: JobStore) -> None:
    start(store)
    assert not store.progress("j1", 0.25, "a quarter")
    state = store.get("j1")
    assert state is not None and (state.progress, state.progress_message) == (0.25, "a quarter")
    store.finish("j1", "succeeded")
    store.progress("j1", 0.5, "late")  # a late timer write changes nothing
    state = store.get("j1")
    assert state is not None and (state.progress, state.progress_message) == (0.25, "a quarter")


def test_cancel_a_running_job_asks_it(store: JobStore) -> None:
    start(store)
    state = store.cancel("j1")
    assert state is not None and (state.status, state.cancel_requested) == ("running", True)
    assert store.cancel_requested("j1")
    assert store.progress("j1", 0.3, None)
    assert store.finish("j1", "cancelled")
    state = store.get("j1")
    assert state is not None and state.status == "cancelled" and state.done
    assert not start(store, attempt=2)


def test_cancel_a_job_waiting_for_its_retry(store: JobStore) -> None:
    start(store)
    store.finish("j1", "failed", error={"type": "E", "message": "x"})
    state = store.cancel("j1")
    assert state is not None and state.status == "cancelled"
    assert not start(store, attempt=2)


def test_cancel_a_finished_job_leaves_it(store: JobStore) -> None:
    start(store)
    store.finish("j1", "succeeded", result="r")
    state = store.cancel("j1")
    assert state is not None and (state.status, state.result) == ("succeeded", "r")


def test_retention_counts_from_the_finish(store: JobStore, clock: Clock) -> None:
    start(store, keep=60)
    clock.now += 1000  # a long job: retention has not started yet
    assert store.get("j1") is not None
    store.finish("j1", "succeeded", keep=60)
    clock.now += 60
    assert store.get("j1") is not None
    clock.now += 2
    assert store.get("j1") is None
    assert list(store.list()) == []


def test_list_newest_first_by_queue_and_status(store: JobStore) -> None:
    for n in range(5):
        start(store, f"j{n}", queue="a" if n % 2 else "b", queued_at=1_799_999_000.0 + n)
    store.finish("j3", "succeeded")
    assert [s.job_id for s in store.list()] == ["j4", "j3", "j2", "j1", "j0"]
    assert [s.job_id for s in store.list(queue="a")] == ["j3", "j1"]
    assert [s.job_id for s in store.list(status="running", limit=2)] == ["j4", "j2"]
    assert [s.job_id for s in store.list(queue="a", status="succeeded")] == ["j3"]


def test_a_pushed_job_before_its_first_receive(store: JobStore, clock: Clock) -> None:
    local = is_local(store)
    queued, delayed = push(store), push(store, delay=30)
    state = store.get(queued)
    if not local:  # docs/queues.md: until its first receive a job has no state on AWS
        assert state is None and store.get(delayed) is None
        return
    assert state is not None
    assert (state.status, state.attempts, state.user, state.queued_at) == (
        "queued",
        0,
        "u1",
        clock.now,
    )
    state = store.get(delayed)
    assert state is not None and (state.status, state.started_at) == ("delayed", None)
    clock.now += 30
    state = store.get(delayed)
    assert state is not None and state.status == "queued"


def test_a_job_cancelled_before_its_first_receive_is_refused(store: JobStore) -> None:
    for job_id in (push(store), push(store, delay=30)):
        state = store.cancel(job_id)
        if is_local(store):
            assert state is not None and (state.status, state.attempts) == ("cancelled", 0)
        else:  # nothing is known yet, a marker refuses the delivery
            assert state is None
        assert not start(store, job_id)


def test_list_mixes_received_and_waiting_jobs(store: JobStore, clock: Clock) -> None:
    start(store, "running")
    waiting = push(store)
    clock.now += 0.001
    delayed = push(store, delay=30)
    listed = [(s.job_id, s.status) for s in store.list()]
    if is_local(store):
        assert listed == [(delayed, "delayed"), (waiting, "queued"), ("running", "running")]
        assert [s.job_id for s in store.list(status="queued")] == [waiting]
    else:
        assert listed == [("running", "running")]
