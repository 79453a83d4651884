"""Flow control through the test client and the CLI: rate limits (config, engine, worker, routes)."""

from __future__ import annotations

import json

import pytest

from qr.cli.main import main
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import scan
from qr.runtime.ports import OutgoingJob
from qr.runtime.testing import Client
from tests.conftest import MakeProject

LIMITED = {
    "queues/calls.py": """
        config = {"rate_limit": {"limit": 2, "per": 60}}

        def handler(payload, job):
            return {"n": payload["n"], "attempt": job.received_count}
    """,
    "queues/per_user.py": """
        config = {"rate_limit": {"limit": 1, "per": 60, "key": "user"}}

        def handler(payload, user):
            return user["id"]
    """,
}


def test_jobs_over_the_limit_wait_without_failing(make_project: MakeProject) -> None:
    with Client(make_project(LIMITED)) as client:
        from qr.runtime import queues

        for n in range(5):
            queues["calls"].push({"n": n})
        outcomes = client.run_queue("calls")
        assert [(o.outcome, o.result) for o in outcomes] == [
            ("ok", {"n": 0, "attempt": 1}),
            ("ok", {"n": 1, "attempt": 1}),
        ]
        stats = client.engine.stats(["calls"])[0]
        assert (stats.depth, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 3, 0)
        assert client.run_queue("calls") == []  # still waiting for tokens, nothing failed


def test_rate_limit_per_user(make_project: MakeProject) -> None:
    from qr.runtime.context import Invocation, invocation

    with Client(make_project(LIMITED)) as client:
        from qr.runtime import queues

        for user in ("ann", "bob", "ann"):
            with invocation(Invocation("http", "r", user={"id": user})):
                queues["per_user"].push({})
        assert sorted(o.result for o in client.run_queue("per_user")) == ["ann", "bob"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{'limit': 0, 'per': 1}", "config['rate_limit']['limit'] must be a whole number"),
        ("{'limit': 5, 'per': -1}", "config['rate_limit']['per'] must be a window in seconds"),
        ("{'limit': 5, 'key': ['user']}", "config['rate_limit']['key'] must be 'user', 'group'"),
    ],
)
def test_bad_rate_limits_are_load_errors_with_file_and_line(
    make_project: MakeProject, config: str, message: str
) -> None:
    root = make_project(
        {
            "queues/q.py": f"import os\n\nconfig = {{'rate_limit': {config}}}\n\ndef handler(payload): pass\n"
        }
    )
    with pytest.raises(ProjectError) as info:
        scan(root)
    text = str(info.value)
    assert f"queues/q.py:3: {message}" in text
    assert "fix: e.g. config['rate_limit'] = {'limit': 10" in text


def test_routes_shows_the_rate_limit(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(LIMITED)
    with pytest.raises(SystemExit):
        main(["routes", "-C", str(root)])
    out = capsys.readouterr().out
    assert "2/60s" in out and "1/60s per user" in out
    with pytest.raises(SystemExit):
        main(["routes", "--json", "-C", str(root)])
    data = json.loads(capsys.readouterr().out)
    by_name = {q["name"]: q["config"]["rate_limit"] for q in data["queues"]}
    assert by_name["per_user"] == {"limit": 1, "per": 60.0, "key": "user"}


DEBOUNCED = {
    "queues/reindex.py": """
        def handler(payload):
            return payload
    """,
    "queues/ordered.fifo.py": "def handler(payload): pass\n",
}


def test_debounce_runs_only_the_last_payload_once(make_project: MakeProject) -> None:
    import time

    from qr.runtime.queues import QueueError

    with Client(make_project(DEBOUNCED)) as client:
        from qr.runtime import queues

        ids = [queues["reindex"].debounce("doc-1", seconds=0.2).push({"v": v}) for v in range(3)]
        queues["reindex"].debounce("doc-2", seconds=0.2).push({"v": "other"})
        assert client.engine.stats(["reindex"])[0].delayed == 2
        states = [client.engine.job_state(i) for i in ids]
        assert [s.status if s else None for s in states] == ["cancelled", "cancelled", "delayed"]
        outcomes: list[object] = []
        deadline = time.monotonic() + 30
        while len(outcomes) < 2 and time.monotonic() < deadline:
            outcomes += [o.result for o in client.run_queue("reindex")]
            time.sleep(0.05)
        assert sorted(map(str, outcomes)) == ["{'v': 'other'}", "{'v': 2}"]

        with pytest.raises(QueueError, match="debounce key must be a non-empty string"):
            queues["reindex"].debounce(42, seconds=1)
        with pytest.raises(QueueError) as info:
            queues["reindex"].debounce("k", seconds=3600)
        assert "at most 900 (15 minutes, the SQS message delay limit" in str(info.value)
        with pytest.raises(QueueError, match="debounce seconds must be above 0"):
            queues["reindex"].debounce("k", seconds=0)
        with pytest.raises(QueueError, match="debounce\\(\\) is for standard queues"):
            queues["ordered.fifo"].debounce("k", seconds=1)
        with pytest.raises(QueueError, match="takes no delay="):
            queues["reindex"].debounce("k", seconds=1).push({}, delay=5)


def test_a_debounce_key_that_is_not_a_string_at_module_level_is_a_load_error(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            **DEBOUNCED,
            "api/index.py": """
                from qr.runtime import queues

                later = queues["reindex"].debounce(["doc"], seconds=30)

                def post():
                    return later.push({})
            """,
        }
    )
    with pytest.raises(ProjectError) as info:
        scan(root)
    assert "api/index.py:3: failed to import: QueueError" in str(info.value)
    assert "debounce key must be a non-empty string" in str(info.value)


CHAINED = {
    "queues/fetch.py": """
        from qr.runtime import queues

        def handler(payload, job):
            if payload.get("fail"):
                raise RuntimeError("not yet")
            job.then("audit", {"fetched": payload["url"]})
            return queues["resize"].after({"url": payload["url"], "size": 64})
    """,
    "queues/resize.py": """
        from qr.runtime import queues

        def handler(payload):
            # fan-out: one step per size
            return [queues["publish.fifo"].group("site").after({"size": s}) for s in (64, 128)]
    """,
    "queues/publish.fifo.py": "def handler(payload):\n    return payload\n",
    "queues/audit.py": "def handler(payload):\n    return payload\n",
}


def test_a_chain_pushes_the_next_step_only_after_success(make_project: MakeProject) -> None:
    with Client(make_project(CHAINED)) as client:
        from qr.runtime import queues

        queues["fetch"].push({"url": "u", "fail": True})
        (failed,) = client.run_queue("fetch")
        assert failed.outcome == "retry"
        assert client.engine.stats(["resize", "audit"])[0].depth == 0  # nothing pushed
        good = queues["fetch"].push({"url": "v"})
        outcomes = client.run_queue("fetch")
        assert [o.outcome for o in outcomes] == ["ok"]
        next_ids = outcomes[0].result["next"]
        assert len(next_ids) == 2  # job.then() first, then the returned step
        (audit,) = client.run_queue("audit")
        assert (audit.job_id, audit.result) == (next_ids[0], {"fetched": "v"})
        (resize,) = client.run_queue("resize")
        assert (resize.job_id, resize.result["next"][0] is not None) == (next_ids[1], True)
        published = [o.result for o in client.run_queue("publish.fifo")]
        assert published == [{"size": 64}, {"size": 128}]
        assert good


def test_a_job_run_again_never_pushes_its_step_twice(make_project: MakeProject) -> None:
    with Client(make_project(CHAINED)) as client:
        engine = client.engine
        ids = engine.push_steps("job-1", [_job("resize", 1), _job("audit", 2)])
        again = engine.push_steps("job-1", [_job("resize", 1), _job("audit", 2)])
        assert again == ids
        assert engine.stats(["resize"])[0].depth == 1
        assert engine.stats(["audit"])[0].depth == 1


def _job(queue: str, n: int) -> OutgoingJob:
    return OutgoingJob(queue, str(n), "application/json")


def test_a_chain_to_an_unknown_queue_is_a_load_error(make_project: MakeProject) -> None:
    root = make_project(
        {
            **CHAINED,
            "queues/audit.py": """
                from qr.runtime import queues

                def handler(payload, job):
                    job.then("archive", payload)
                    return queues["resise"].after(payload)
            """,
        }
    )
    with pytest.raises(ProjectError) as info:
        scan(root)
    text = str(info.value)
    assert "queues/audit.py:4: chains to the queue 'archive', which does not exist" in text
    assert "queues/audit.py:5: chains to the queue 'resise', which does not exist" in text
    assert "resize" in text  # the suggestion
