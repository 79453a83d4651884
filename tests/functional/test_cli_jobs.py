"""qr jobs / qr jobs show against a project's local queue database (the JobStore port)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.manifest import Backoff
from qr.runtime.queues import Queue
from tests.conftest import MakeProject
from tests.functional.test_cli import run

FILES = {
    "queues/emails.py": "def handler(payload): ...\n",
    "queues/resize.py": "def handler(payload): ...\n",
}


def _jobs(root: Path) -> dict[str, str]:
    engine = Engine(root / DB_PATH)
    try:
        ids = {
            name: engine.push(Queue(queue).prepare({"n": name})).job_id
            for name, queue in (("sent", "emails"), ("broken", "emails"), ("big", "resize"))
        }
        for claimed in engine.claim("emails", 10, 30):
            if claimed.job_id == ids["sent"]:
                engine.ack(claimed, {"to": "a@b.c"})
            else:
                engine.fail(
                    claimed,
                    "Traceback ...\nValueError: no address",
                    max_attempts=1,
                    backoff=Backoff(),
                    error_info={"type": "ValueError", "message": "no address"},
                )
        engine.claim("resize", 1, 30)
        engine.progress(ids["big"], 0.4, "resized 4 of 10")
    finally:
        engine.close()
    return ids


def test_list_filters_and_json(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(FILES)
    ids = _jobs(root)
    code, out, err = run(capsys, "jobs", "-C", str(root))
    assert code == 0, err
    assert "Jobs (local, .qr/dev/queues.db)" in out
    for job_id in ids.values():
        assert job_id in out
    code, out, err = run(
        capsys, "jobs", "emails", "--status", "succeeded", "--json", "-C", str(root)
    )
    assert code == 0, err
    (only,) = json.loads(out)
    assert (only["job_id"], only["status"], only["result"]) == (
        ids["sent"],
        "succeeded",
        {"to": "a@b.c"},
    )
    code, out, err = run(capsys, "jobs", "--limit", "1", "--json", "-C", str(root))
    assert code == 0 and len(json.loads(out)) == 1


def test_show_state_progress_result_and_error(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(FILES)
    ids = _jobs(root)
    code, out, err = run(capsys, "jobs", "show", ids["big"], "-C", str(root))
    assert code == 0, err
    assert "status    running" in out
    assert "progress  [########............] 40% resized 4 of 10" in out
    code, out, err = run(capsys, "jobs", "show", ids["sent"], "-C", str(root))
    assert "result" in out and '"to": "a@b.c"' in out
    code, out, err = run(capsys, "jobs", "show", ids["broken"], "-C", str(root))
    assert "status    dead" in out and "error     ValueError: no address" in out
    code, out, err = run(capsys, "jobs", "show", ids["broken"], "--json", "-C", str(root))
    assert json.loads(out)["error"] == {"type": "ValueError", "message": "no address"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "no job 'nope' in local, .qr/dev/queues.db"),
        (["show"], "qr jobs show needs a job id"),
        (["emials"], "there is no queue named 'emials'. Did you mean 'emails'?"),
        (["--status", "done"], "unknown job status 'done'"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_input_is_a_clear_error(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    root = make_project(FILES)
    code, out, err = run(capsys, "jobs", *args, "-C", str(root))
    assert code != 0
    assert message in " ".join((out + err).split())
