"""Running one queue or schedule job: injection, decoding, context, deadlines."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from qr.runtime.jobs import Job, JobMessage, JobTimeout, run_queue_job, run_schedule_job
from qr.runtime.manifest import Manifest, scan
from qr.runtime.queues import BINARY, JSON, TEXT
from tests.conftest import MakeProject
from tests.waiting import WAIT


def message(queue: str, body: str, content_type: str | None = JSON, **kw: Any) -> JobMessage:
    return JobMessage("job-1", queue, body, content_type, **kw)


@pytest.fixture
def project(make_project: MakeProject) -> Manifest:
    root = make_project(
        {
            "queues/everything.py": """
                from qr.runtime.context import current
                def handler(payload, job, user, params, job_id, queue_name, group_id,
                            sequence_number, received_count, queued_at, deadline, request_id):
                    return dict(locals(), invocation=current())
            """,
            "queues/tasks.fifo.py": """
                async def handler(payload):
                    return type(payload).__name__, payload
            """,
            "queues/slow_async.py": """
                import asyncio
                config = {"timeout": 0.05}
                cancelled = []
                async def handler(job):
                    try:
                        await asyncio.sleep(60)
                    except asyncio.CancelledError:
                        cancelled.append(job.job_id)
                        raise
            """,
            "queues/slow_sync.py": """
                import threading
                config = {"timeout": 0.05}
                release = threading.Event()
                finished = []
                def handler(job):
                    release.wait(10)
                    finished.append(job.job_id)
                    return "late"
            """,
            "queues/extends.py": """
                import asyncio
                config = {"timeout": 0.05}
                async def handler(job):
                    job.extend(5)
                    await asyncio.sleep(0.2)
                    return "finished"
            """,
            "queues/broken.py": """
                def handler(payload):
                    raise KeyError(payload)
            """,
            "schedules/nightly.py": """
                schedule = "daily"
                def handler(job, schedule_name, scheduled_at):
                    return job, schedule_name, scheduled_at
            """,
            "schedules/slow.py": """
                import asyncio
                schedule = "never"
                config = {"timeout": 0.05}
                async def handler():
                    await asyncio.sleep(60)
            """,
        }
    )
    return scan(root)


def queue(manifest: Manifest, name: str) -> Any:
    found = manifest.queue(name)
    assert found is not None
    return found


def test_handler_gets_every_injectable_by_name(project: Manifest) -> None:
    msg = message(
        "everything",
        '{"a":1}',
        group_id=None,
        received_count=2,
        queued_at=1_700_000_000.5,
        user_id="u7",
        params={"id": "3"},
    )
    before = time.monotonic()
    got = asyncio.run(run_queue_job(queue(project, "everything"), msg))
    assert got["payload"] == {"a": 1}
    job = got["job"]
    assert isinstance(job, Job)
    assert (job.job_id, job.queue_name, job.received_count) == ("job-1", "everything", 2)
    assert job.queued_at == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert got["user"] == job.user == {"id": "u7"}
    assert got["params"] == {"id": "3"}
    assert (got["job_id"], got["request_id"], got["queue_name"]) == ("job-1", "job-1", "everything")
    assert got["deadline"] == job.deadline and got["deadline"] >= before + 30
    invocation = got["invocation"]  # the sync handler ran in a thread with the job's context
    assert (invocation.kind, invocation.request_id, invocation.user_id) == ("job", "job-1", "u7")
    assert invocation.handler == "queues/everything.py"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("[1,2]", JSON, ("list", [1, 2])),
        ("hi", TEXT, ("str", "hi")),
        ("AAE=", BINARY, ("bytes", b"\x00\x01")),
    ],
)
def test_payload_is_delivered_as_the_pushed_type(
    project: Manifest, body: str, content_type: str, expected: tuple[str, object]
) -> None:
    msg = message("tasks.fifo", body, content_type, group_id="g", sequence_number=5)
    assert asyncio.run(run_queue_job(queue(project, "tasks.fifo"), msg)) == expected


def test_async_handler_is_cancelled_at_its_deadline(project: Manifest) -> None:
    target = queue(project, "slow_async")
    with pytest.raises(JobTimeout, match="did not finish by its deadline"):
        asyncio.run(run_queue_job(target, message("slow_async", "1")))
    assert sys.modules[target.module].cancelled == ["job-1"]


def test_sync_overrun_fails_and_its_late_result_is_ignored(
    project: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    target = queue(project, "slow_sync")
    module = sys.modules[target.module]

    async def run() -> None:
        with pytest.raises(JobTimeout):
            await run_queue_job(target, message("slow_sync", "1"))
        module.release.set()
        deadline = time.monotonic() + WAIT
        # the handler's thread finishes, then a done-callback on this loop logs the late result
        while "finished after its deadline" not in caplog.text:
            assert time.monotonic() < deadline, f"no late-result log line in:\n{caplog.text}"
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="qr.queues"):
        asyncio.run(run())
    assert module.finished == ["job-1"]
    assert "finished after its deadline (returned)" in caplog.text
    assert "this result is ignored" in caplog.text


def test_extend_moves_the_deadline_and_calls_the_platform(project: Manifest) -> None:
    calls: list[float] = []
    got = asyncio.run(
        run_queue_job(queue(project, "extends"), message("extends", "1"), extend=calls.append)
    )
    assert got == "finished"
    assert calls == [5]


def test_extend_validates_seconds() -> None:
    job = Job(message("q", "1"), time.monotonic() + 1)
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError, match="positive number of seconds"):
            job.extend(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="past 12 hours"):
        job.extend(43_201)
    job.extend(10)  # no platform callable: only the deadline moves
    assert job.remaining > 5


def test_handler_errors_propagate(project: Manifest) -> None:
    with pytest.raises(KeyError, match="x"):
        asyncio.run(run_queue_job(queue(project, "broken"), message("broken", '"x"')))


def test_undecodable_body_is_an_error(project: Manifest) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        asyncio.run(run_queue_job(queue(project, "broken"), message("broken", "{")))


def test_schedule_job(project: Manifest) -> None:
    schedule = project.schedule("nightly")
    assert schedule is not None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    job, name, scheduled_at = asyncio.run(run_schedule_job(schedule, "s-1", at))
    assert (job.job_id, job.schedule_name, job.scheduled_at, name) == (
        "s-1",
        "nightly",
        at,
        "nightly",
    )
    assert scheduled_at == at and job.remaining > 0


def test_schedule_timeout(project: Manifest) -> None:
    schedule = project.schedule("slow")
    assert schedule is not None
    with pytest.raises(JobTimeout):
        asyncio.run(run_schedule_job(schedule, "s-2", datetime.now(UTC)))


def test_cancelling_the_runner_cancels_the_handler(project: Manifest) -> None:
    target = queue(project, "slow_async")

    async def run() -> None:
        task = asyncio.create_task(
            run_queue_job(target, message("slow_async", "1"), deadline=time.monotonic() + 60)
        )
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert sys.modules[target.module].cancelled == ["job-1"]
