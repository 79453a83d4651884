"""qr queues, qr dev queue, qr dev redrive against a project's .qr/dev/queues.db."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qr.cli.local_queues import read_payload
from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.manifest import Backoff
from tests.conftest import MakeProject
from tests.functional.test_cli import run

FILES = {
    "queues/emails.py": "def handler(payload): ...\n",
    "queues/orders.fifo.py": "def handler(payload): ...\n",
}


def test_push_then_list(make_project: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(FILES)
    code, out, err = run(capsys, "dev", "queue", "emails", '{"to": "a@b.c"}', "-C", str(root))
    assert code == 0, err
    assert out.startswith("ok: emails: queued job ")
    code, out, err = run(
        capsys,
        "dev",
        "queue",
        "orders.fifo",
        "[1]",
        "--group",
        "g",
        "--dedupe",
        "d",
        "-C",
        str(root),
        "--json",
    )
    assert code == 0, err
    first = json.loads(out)
    assert (first["queue"], first["duplicate"]) == ("orders.fifo", False)
    code, out, _ = run(
        capsys, "dev", "queue", "orders.fifo", "[2]", "-g", "g", "--dedupe", "d", "-C", str(root)
    )
    assert f"duplicate of job {first['job_id']}" in out

    code, out, err = run(capsys, "queues", "-C", str(root), "--json")
    assert code == 0, err
    assert json.loads(out) == [
        {"queue": "emails", "depth": 1, "in_flight": 0, "delayed": 0, "dead": 0},
        {"queue": "orders.fifo", "depth": 1, "in_flight": 0, "delayed": 0, "dead": 0},
    ]
    code, out, _ = run(capsys, "queues", "-C", str(root))
    assert "QUEUE" in out and "emails" in out and "DEAD" in out

    engine = Engine(root / DB_PATH)
    (claimed,) = engine.claim("emails", 1, 30)
    assert claimed.body == '{"to":"a@b.c"}'


def test_push_errors_are_clear(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(FILES)
    code, _, err = run(capsys, "dev", "queue", "emial", "{}", "-C", str(root))
    assert code == 1
    assert "there is no queue named 'emial'. Did you mean 'emails'?" in err
    assert "known queues: emails, orders.fifo" in err
    code, _, err = run(capsys, "dev", "queue", "orders.fifo", "{}", "-C", str(root))
    assert code == 1 and "needs a message group" in err
    code, _, err = run(capsys, "dev", "queue", "emails", "@missing.json", "-C", str(root))
    assert code == 1 and "cannot read the payload file missing.json" in err


def test_redrive(make_project: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(FILES)
    run(capsys, "dev", "queue", "emails", "1", "-C", str(root))
    engine = Engine(root / DB_PATH)
    (claimed,) = engine.claim("emails", 1, 30)
    assert engine.fail(claimed, "boom", max_attempts=1, backoff=Backoff()) == "dead"
    code, out, _ = run(capsys, "queues", "-C", str(root), "--json")
    assert json.loads(out)[0]["dead"] == 1
    code, out, err = run(capsys, "dev", "redrive", "emails", "-C", str(root))
    assert code == 0, err
    assert "moved 1 job back" in out
    assert engine.stats(["emails"])[0].depth == 1


def test_read_payload_forms(tmp_path: Path) -> None:
    assert read_payload('{"a": 1}') == {"a": 1}
    assert read_payload("not json") == "not json"
    assert read_payload("-", io.StringIO("[1, 2]")) == [1, 2]
    (tmp_path / "p.json").write_text('{"b": 2}')
    assert read_payload(f"@{tmp_path / 'p.json'}") == {"b": 2}
    (tmp_path / "p.bin").write_bytes(b"\xff\x00")
    assert read_payload(f"@{tmp_path / 'p.bin'}") == b"\xff\x00"


def test_stdin_payload_from_another_process(make_project: MakeProject) -> None:
    root = make_project(FILES)
    result = subprocess.run(
        [sys.executable, "-m", "qr.cli", "dev", "queue", "emails", "-", "-C", str(root)],
        input='{"from": "stdin"}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (claimed,) = Engine(root / DB_PATH).claim("emails", 1, 30)
    assert claimed.body == '{"from":"stdin"}'


def test_purge_and_redrive_through_qr_queues(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(FILES)
    for n in range(3):
        assert run(capsys, "dev", "queue", "emails", str(n), "-C", str(root))[0] == 0
    engine = Engine(root / DB_PATH)
    (claimed,) = engine.claim("emails", 1, 30)
    engine.fail(claimed, "boom", max_attempts=1, backoff=Backoff("fixed", 0, 0, jitter=False))
    engine.close()

    code, out, err = run(capsys, "queues", "redrive", "emails", "-C", str(root))
    assert code == 0, err
    assert out == "ok: emails: moved 1 job back from the dead-letter queue\n"
    code, out, err = run(capsys, "queues", "purge", "emails", "--yes", "-C", str(root), "--json")
    assert code == 0, err
    assert json.loads(out) == {"queue": "emails", "dead": False, "purged": 3, "stage": None}
    code, out, _ = run(capsys, "queues", "-C", str(root), "--json")
    assert json.loads(out)[0] == {
        "queue": "emails",
        "depth": 0,
        "in_flight": 0,
        "delayed": 0,
        "dead": 0,
    }
    code, _, err = run(capsys, "queues", "purge", "nope", "--yes", "-C", str(root))
    assert code == 1 and "there is no queue named 'nope'" in err
