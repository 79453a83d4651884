"""Job state on the Lambda platform: SQS batches through the entry point, state on DynamoDB (moto).

Two DynamoDB writes per job without progress calls (start, finish), counted from the client's own
requests; a late duplicate delivery is refused by the conditional start and never moves a
finished job back; a job cancelled before its first receive is deleted without running; a running
job sees the cancel at its next progress call and is not retried.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.runtime import ports
from qr.runtime.aws.entry import LambdaRuntime
from qr.runtime.aws.job_state import DynamoJobStore, JobStateTooLarge
from tests.conftest import MakeProject
from tests.integration.lambda_support import create_jobs_table, moto_clients

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_logging")]

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
FILES = {
    "qr.yaml": "name: demo\n",
    "queues/work.py": """
        ran = []
        config = {"max_attempts": 2, "status_route": True}
        def handler(payload, job):
            ran.append((job.job_id, job.received_count))
            if payload.get("progress"):
                for step in range(3):
                    job.progress((step + 1) / 3, f"step {step + 1}")
                    if job.cancelled:
                        raise RuntimeError("stopping: cancelled")
            if payload.get("fail"):
                raise ValueError("bad input")
            return {"done": payload.get("n")}
    """,
}


class Lambda:
    def __init__(self, root: Path, url: str) -> None:
        self.clients = moto_clients(url)
        self.table = f"demo-production-jobs-{uuid.uuid4().hex[:6]}"
        create_jobs_table(self.clients.get("dynamodb"), self.table)
        self.writes: list[str] = []
        self.clients.get("dynamodb").meta.events.register("before-call.dynamodb", self._count)
        environ = {
            "LOG_LEVEL": "CRITICAL",
            "QR_QUEUE_URL_PREFIX": f"{url}/123456789012/demo-production-",
            "QR_JOBS_TABLE": self.table,
        }
        self.runtime = LambdaRuntime(root, environ, self.clients)
        self.store = DynamoJobStore(self.table, self.clients)

    def _count(self, model: Any, **_: Any) -> None:
        if model.name in WRITES:
            self.writes.append(model.name)

    def run(self, *records: dict[str, Any]) -> list[str]:
        response = self.runtime.dispatch({"Records": list(records)})
        return [f["itemIdentifier"] for f in response["batchItemFailures"]]

    @property
    def ran(self) -> list[tuple[str, int]]:
        queue = self.runtime.manifest.queue("work")
        assert queue is not None
        ran: list[tuple[str, int]] = sys.modules[queue.module].ran
        return ran

    def close(self) -> None:
        self.runtime.close()
        ports.set_platform(None)


@pytest.fixture
def aws(make_project: MakeProject, moto_url: str) -> Iterator[Lambda]:
    function = Lambda(make_project(FILES), moto_url)
    yield function
    function.close()


def record(job_id: str, body: object, receive_count: int = 1) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "sqs_record.json").read_text())
    event["messageId"] = job_id
    event["receiptHandle"] = f"handle-{job_id}"
    event["body"] = json.dumps(body)
    event["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    event["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:demo-production-work"
    event["messageAttributes"] = {
        "user_id": {"stringValue": "u9", "dataType": "String"},
    }
    return event


def test_two_writes_per_job_and_the_state_is_readable(aws: Lambda) -> None:
    assert aws.run(record("a", {"n": 1}), record("b", {"n": 2})) == []
    assert sorted(aws.writes) == ["UpdateItem"] * 4  # start + finish, per job
    state = aws.store.get("a")
    assert state is not None
    assert (state.status, state.result, state.attempts, state.queue) == (
        "succeeded",
        {"done": 1},
        1,
        "work",
    )
    assert state.user == "u9" and state.finished_at is not None


def test_a_late_duplicate_is_not_run_and_never_moves_the_job_back(aws: Lambda) -> None:
    assert aws.run(record("a", {"n": 1})) == []
    assert aws.run(record("a", {"n": 1}, receive_count=2)) == []  # deleted, not retried
    assert aws.ran == [("a", 1)]
    state = aws.store.get("a")
    assert state is not None and (state.status, state.attempts) == ("succeeded", 1)


def test_failed_then_dead_with_type_and_message(aws: Lambda) -> None:
    assert aws.run(record("f", {"fail": True})) == ["f"]
    state = aws.store.get("f")
    assert state is not None and state.status == "failed"
    assert state.error == {"type": "ValueError", "message": "bad input"}  # no traceback on AWS
    assert aws.run(record("f", {"fail": True}, receive_count=2)) == ["f"]
    state = aws.store.get("f")
    assert state is not None and (state.status, state.attempts) == ("dead", 2)


def test_cancelled_before_its_first_receive_it_never_runs(aws: Lambda) -> None:
    assert aws.store.cancel("c") is None  # nothing known about it yet
    assert aws.run(record("c", {"n": 3})) == []  # deleted without running
    assert aws.ran == []


def test_a_running_job_sees_the_cancel_and_is_not_retried(aws: Lambda) -> None:
    original = aws.store.progress

    def cancel_then_report(job_id: str, value: float, message: str | None) -> bool:
        aws.store.cancel(job_id)  # a user cancels while the job runs
        return original(job_id, value, message)

    aws.runtime.platform.jobs.progress = cancel_then_report  # type: ignore[method-assign,union-attr]
    assert aws.run(record("r", {"progress": True})) == []
    state = aws.store.get("r")
    assert state is not None and state.status == "cancelled"
    assert (state.progress, state.progress_message) == (1 / 3, "step 1")
    assert state.error is not None and state.error["message"] == "stopping: cancelled"


def test_a_state_over_the_item_limit_is_a_clear_error(aws: Lambda) -> None:
    from qr.runtime.ports import JobStart

    assert aws.store.start(JobStart("big", "work", 1, 0.0))
    with pytest.raises(JobStateTooLarge, match="400 KB"):
        aws.store.finish("big", "succeeded", result="x" * 420_000)


def get(aws: Lambda, path: str) -> tuple[int, dict[str, Any]]:
    event: dict[str, Any] = json.loads((EVENTS / "http_get.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = ""
    event["cookies"] = []
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "authorization"}
    response = aws.runtime.dispatch(event)
    return response["statusCode"], json.loads(response["body"])


def test_the_status_route_on_lambda(aws: Lambda) -> None:
    status, body = get(aws, "/_jobs/s")
    assert status == 404 and "has not been picked up yet" in body["error"]
    record_s = record("s", {"n": 5})
    record_s["messageAttributes"] = {}  # no user: anyone may read it
    assert aws.run(record_s) == []
    status, body = get(aws, "/_jobs/s")
    assert status == 200
    assert (body["status"], body["result"], body["queue"]) == ("succeeded", {"done": 5}, "work")
    assert aws.run(record("mine", {"n": 6})) == []  # pushed by u9
    status, body = get(aws, "/_jobs/mine")
    assert status == 401


def test_a_killed_attempt_reads_queued_once_its_lease_is_over(moto_url: str) -> None:
    from qr.runtime.ports import JobStart

    now = [1_800_000_000.0]
    clients = moto_clients(moto_url)
    table = f"jobs-{uuid.uuid4().hex[:6]}"
    create_jobs_table(clients.get("dynamodb"), table)
    store = DynamoJobStore(table, clients, clock=lambda: now[0])
    assert store.start(JobStart("k", "work", 1, now[0], lease=35))
    now[0] += 30
    state = store.get("k")
    assert state is not None and state.status == "running"
    now[0] += 6  # the function was killed: nothing finished it
    state = store.get("k")
    assert state is not None and (state.status, state.attempts) == ("queued", 1)
    assert store.start(JobStart("k", "work", 2, now[0], lease=35))  # SQS delivers it again
    state = store.get("k")
    assert state is not None and (state.status, state.attempts) == ("running", 2)
