"""Following jobs through the test client: jobs.get/cancel/wait, job.progress, results, retention."""

from __future__ import annotations

import asyncio

import pytest

from qr.runtime import jobs
from qr.runtime.testing import Client
from tests.conftest import MakeProject

FILES = {
    "api/start.py": """
        from qr.runtime import queues
        def post(body):
            return {"job_id": queues[body["queue"]].push(body.get("payload", {}))}
    """,
    "api/_middleware.py": """
        def authenticate(bearer_token):
            return {"id": bearer_token} if bearer_token else None
    """,
    "queues/resize.py": """
        def handler(payload, job):
            for i in range(4):
                job.progress((i + 1) / 4, f"resized {i + 1} of 4")
            return {"resized": 4, "cancelled": job.cancelled}
    """,
    "queues/flaky.py": """
        config = {"max_attempts": 2, "backoff": {"strategy": "fixed", "initial": 0, "max": 0}}
        def handler(payload):
            raise ValueError(f"cannot handle {payload['n']}")
    """,
    "queues/retry_later.py": """
        config = {"backoff": {"strategy": "fixed", "initial": 600, "max": 600}}
        def handler(payload):
            raise ValueError(f"cannot handle {payload['n']}")
    """,
    "queues/weird.py": """
        class Thing:
            pass

        def handler(payload):
            return Thing()
    """,
    "queues/huge.py": """
        def handler(payload):
            return "x" * 500_000
    """,
    "queues/bad_progress.py": """
        def handler(payload, job):
            job.progress(payload["value"])
    """,
    "queues/forget.py": """
        config = {"keep_results": 0}
        def handler(payload, job):
            job.progress(0.5)
            return {"kept": False}
    """,
    "queues/later.py": """
        ran = []
        def handler(payload):
            ran.append(payload)
    """,
}


def test_a_pushed_job_is_queued_then_succeeded_with_result_progress_and_user(
    make_project: MakeProject,
) -> None:
    with Client(make_project(FILES)) as client:
        response = client.post(
            "/start", json={"queue": "resize"}, headers={"authorization": "Bearer u7"}
        )
        job_id = response.json()["job_id"]
        state = jobs.get(job_id)
        assert state is not None
        assert (state.status, state.queue, state.attempts, state.user) == (
            "queued",
            "resize",
            0,
            "u7",
        )
        assert state.started_at is None and state.queued_at is not None
        client.run_queue("resize")
        state = client.job(job_id)
        assert state is not None and state.status == "succeeded"
        assert state.result == {"resized": 4, "cancelled": False}
        assert state.attempts == 1
        # The first report is written, the next ones inside the second are throttled; the last
        # always lands with the outcome.
        assert (state.progress, state.progress_message) == (1.0, "resized 4 of 4")
        assert state.started_at is not None and state.finished_at is not None
        assert state.done
        as_json = state.to_dict()
        assert as_json["status"] == "succeeded" and as_json["finished_at"].endswith("+00:00")


def test_failures_record_the_last_error_then_dead(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        later = client.post("/start", json={"queue": "retry_later", "payload": {"n": 3}}).json()
        (first,) = client.run_queue("retry_later")
        assert first.outcome == "retry"
        state = jobs.get(later["job_id"])
        assert state is not None and state.status == "failed" and state.attempts == 1
        assert state.error is not None
        assert state.error["type"] == "ValueError"
        assert state.error["message"] == "cannot handle 3"
        assert "queues/retry_later.py" in state.error["traceback"]
        assert state.finished_at is None and not state.done
        job_id = client.post("/start", json={"queue": "flaky", "payload": {"n": 3}}).json()[
            "job_id"
        ]
        assert [o.outcome for o in client.run_queue("flaky")] == ["retry", "dead"]
        state = jobs.get(job_id)
        assert state is not None and (state.status, state.attempts) == ("dead", 2)
        assert state.finished_at is not None


def test_a_result_that_is_not_json_fails_the_job_naming_file_and_line(
    make_project: MakeProject,
) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/start", json={"queue": "weird"}).json()["job_id"]
        (outcome,) = client.run_queue("weird")
        assert outcome.outcome == "retry"
        state = jobs.get(job_id)
        assert state is not None and state.error is not None
        assert state.error["type"] == "JobResultError"
        assert state.error["message"].startswith("queues/weird.py:4: the handler of queue 'weird'")
        assert "not JSON" in state.error["message"]


def test_a_result_over_the_item_limit_fails_naming_the_limit(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/start", json={"queue": "huge"}).json()["job_id"]
        client.run_queue("huge")
        state = jobs.get(job_id)
        assert state is not None and state.error is not None
        assert "DynamoDB items are at most 400 KB" in state.error["message"]
        assert "500,002 bytes" in state.error["message"]


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True])
def test_progress_outside_0_to_1_is_a_value_error_with_the_value(
    make_project: MakeProject, value: object
) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post(
            "/start", json={"queue": "bad_progress", "payload": {"value": value}}
        ).json()["job_id"]
        client.run_queue("bad_progress")
        state = jobs.get(job_id)
        assert state is not None and state.error is not None
        assert state.error["type"] == "ValueError"
        assert state.error["message"] == (
            f"job.progress() takes a number from 0 to 1, got {value!r}"
        )


def test_unknown_ids_read_none_and_cancel_none(make_project: MakeProject) -> None:
    with Client(make_project(FILES)):
        assert jobs.get("no-such-job") is None
        assert jobs.cancel("no-such-job") is None


def test_keep_results_0_keeps_no_state(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/start", json={"queue": "forget"}).json()["job_id"]
        assert jobs.get(job_id) is None
        (outcome,) = client.run_queue("forget")
        assert outcome.outcome == "ok"
        assert jobs.get(job_id) is None


def test_a_cancelled_queued_job_never_runs(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        keep = client.post("/start", json={"queue": "later", "payload": {"n": 1}}).json()
        drop = client.post("/start", json={"queue": "later", "payload": {"n": 2}}).json()
        state = jobs.cancel(drop["job_id"])
        assert state is not None and state.status == "cancelled"
        outcomes = client.run_queue("later")
        assert [o.job_id for o in outcomes] == [keep["job_id"]]
        later = client.manifest.queue("later")
        assert later is not None
        ran = __import__("sys").modules[later.module].ran
        assert ran == [{"n": 1}]
        # A finished job is left as it was.
        done = jobs.cancel(keep["job_id"])
        assert done is not None and done.status == "succeeded"


def test_wait_returns_once_the_job_is_done_or_at_the_timeout(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/start", json={"queue": "later"}).json()["job_id"]
        waiting = asyncio.run(jobs.wait(job_id, timeout=0.05))
        assert waiting is not None and waiting.status == "queued"
        client.run_queue("later")
        done = asyncio.run(jobs.wait(job_id, timeout=5))
        assert done is not None and done.status == "succeeded"
