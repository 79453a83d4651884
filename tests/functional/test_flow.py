"""Flow control through the test client and the CLI: rate limits (config, engine, worker, routes)."""

from __future__ import annotations

import json

import pytest

from qr.cli.main import main
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import scan
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
