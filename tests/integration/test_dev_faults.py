"""``qr dev`` under handler faults: real ``qr dev`` processes, every wait bounded.

* a handler that calls ``sys.exit()`` (queue sync and async, socket, schedule, HTTP) or raises
  ``KeyboardInterrupt`` fails like any handler: the server goes on serving;
* Ctrl+C while sync handlers are stuck: a printed, bounded grace, then the process ends without
  them (a second Ctrl+C at once); their jobs run again exactly once at the next start;
* hot reload imports off the event loop: requests and jobs are served with the previous code
  during a slow import, and an endless loop at import is abandoned with an error naming the file.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from qr.runtime.local.engine import DB_PATH, Engine
from tests.integration.test_dev_server import running_dev, scaffold
from tests.waiting import WAIT, exited, until

pytestmark = pytest.mark.integration

NO_BACKOFF = (
    'config = {"max_attempts": 2, '
    '"backoff": {"strategy": "fixed", "initial": 0, "max": 0, "jitter": False}}\n'
)
EXITING = {
    "queues/exits.py": f"import sys\n\n{NO_BACKOFF}\n\ndef handler(payload):\n    sys.exit(3)\n",
    "queues/exits_async.py": (
        f"import sys\n\n{NO_BACKOFF}\n\nasync def handler(payload):\n    sys.exit(4)\n"
    ),
    "queues/interrupts.py": (
        f"{NO_BACKOFF}\n\nasync def handler(payload):\n    raise KeyboardInterrupt\n"
    ),
    "socket/index.py": (
        "import sys\n\n\ndef handler(data):\n"
        "    if data == 'exit':\n        sys.exit(5)\n    return {'echo': data}\n"
    ),
    "schedules/exits.py": 'import sys\n\nschedule = "never"\n\n\ndef handler(job):\n    sys.exit(6)\n',
    "api/exit.py": "import sys\n\n\nasync def get():\n    sys.exit(7)\n",
    "api/exit_sync.py": "import sys\n\n\ndef get():\n    sys.exit(8)\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def _dead(root: Path, queues: list[str]) -> bool:
    engine = Engine(root / DB_PATH)
    try:
        return all(stats.dead == 1 for stats in engine.stats(queues))
    finally:
        engine.close()


def test_a_handler_calling_sys_exit_fails_and_the_server_keeps_serving(tmp_path: Path) -> None:
    root = scaffold(tmp_path)
    _write(root, EXITING)
    with running_dev(root, tmp_path / "dev.log", ["--port", "0"], _env()) as dev:
        queues = ["exits", "exits_async", "interrupts"]
        for queue in queues:
            pushed = dev.qr("dev", "queue", queue, "{}", "--json")
            assert pushed.returncode == 0, pushed.stderr
        # each job fails, retries once (max_attempts 2) and reaches the dead-letter queue
        until(lambda: _dead(root, queues), "the three jobs to reach their DLQ")
        assert dev.process.poll() is None
        output = dev.output()
        assert "queues/exits.py: the handler called sys.exit(3) at line 7" in output
        assert "queues/exits_async.py: the handler called sys.exit(4)" in output
        assert "queues/interrupts.py: the handler raised KeyboardInterrupt" in output

        with connect(dev.ws_url(), open_timeout=WAIT) as ws:
            ws.send("exit")
            assert json.loads(ws.recv(timeout=WAIT))["error"] == "internal error"
            ws.send("ping")
            assert json.loads(ws.recv(timeout=WAIT)) == {"echo": "ping"}

        fired = dev.qr("dev", "schedule", "exits")
        assert fired.returncode == 1
        said = fired.stdout + fired.stderr
        assert "schedules/exits.py: the handler called sys.exit(6)" in said
        assert "internal error" not in said

        for path in ("/exit", "/exit_sync"):
            response = httpx.get(dev.url + path, timeout=WAIT)
            assert response.status_code == 500
            assert "called sys.exit" in response.json()["traceback"]
        assert httpx.get(dev.url + "/", timeout=WAIT).status_code == 200
        until(lambda: "socket/index.py: the handler called sys.exit(5)" in dev.output(), "log")
        assert dev.process.poll() is None

        dev.process.send_signal(signal.SIGINT)  # a real Ctrl+C still stops it
        assert exited(dev.process, "qr dev") == 0


STUCK = """
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def handler(payload, job):
    with (ROOT / "runs.log").open("a") as log:
        log.write(f"start {payload['n']} attempt {job.received_count}\\n")
    if (ROOT / "stuck").exists():
        time.sleep(600)
    with (ROOT / "runs.log").open("a") as log:
        log.write(f"done {payload['n']}\\n")
"""


def _runs(root: Path) -> list[str]:
    path = root / "runs.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _stuck_project(tmp_path: Path) -> Path:
    root = scaffold(tmp_path)
    _write(root, {"queues/stuck.py": STUCK, "stuck": ""})
    return root


def _depth(root: Path, queue: str) -> tuple[int, int]:
    engine = Engine(root / DB_PATH)
    try:
        (stats,) = engine.stats([queue])
        return stats.depth, stats.in_flight
    finally:
        engine.close()


def test_ctrl_c_waits_a_printed_grace_then_stops_and_the_jobs_run_again_once(
    tmp_path: Path,
) -> None:
    root = _stuck_project(tmp_path)
    args = ["--port", "0", "--grace", "2"]
    with running_dev(root, tmp_path / "dev.log", args, _env()) as dev:
        for n in (1, 2):
            assert dev.qr("dev", "queue", "stuck", json.dumps({"n": n})).returncode == 0
        until(lambda: len(_runs(root)) == 2, "both jobs to start")
        dev.process.send_signal(signal.SIGINT)
        # the handlers sleep for 600 s: only leaving them behind ends the process within WAIT
        assert exited(dev.process, "qr dev") == 0
        output = dev.output()
    assert "waiting up to 2 s for 2 running jobs; Ctrl+C again to quit now" in output
    assert "Traceback" not in output and "Event loop is closed" not in output
    assert "stopped without waiting for 2 handler threads still running" in output
    assert _depth(root, "stuck") == (2, 0)  # back on the queue, not in flight
    assert sorted(_runs(root)) == ["start 1 attempt 1", "start 2 attempt 1"]

    (root / "stuck").unlink()
    with running_dev(root, tmp_path / "again.log", args, _env()) as dev:
        until(lambda: sum(line.startswith("done") for line in _runs(root)) == 2, "the reruns")
        dev.process.send_signal(signal.SIGINT)
        assert exited(dev.process, "qr dev") == 0
    assert sorted(_runs(root)) == [
        "done 1",
        "done 2",
        "start 1 attempt 1",
        "start 1 attempt 2",  # the interrupted run counted, as SQS would count it
        "start 2 attempt 1",
        "start 2 attempt 2",
    ]
    assert _depth(root, "stuck") == (0, 0)


def test_a_second_ctrl_c_quits_at_once(tmp_path: Path) -> None:
    root = _stuck_project(tmp_path)
    with running_dev(root, tmp_path / "dev.log", ["--port", "0", "--grace", "600"], _env()) as dev:
        assert dev.qr("dev", "queue", "stuck", '{"n": 1}').returncode == 0
        until(lambda: _runs(root), "the job to start")
        dev.process.send_signal(signal.SIGINT)
        until(lambda: "Ctrl+C again to quit now" in dev.output(), "the grace message")
        dev.process.send_signal(signal.SIGINT)
        # the grace and the handler sleep are 600 s: only the second Ctrl+C ends it within WAIT
        assert exited(dev.process, "qr dev") == 0
        output = dev.output()
    assert "quitting now" in output
    assert "Traceback" not in output
    assert _depth(root, "stuck") == (1, 0)


SLOW_IMPORT = """
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
(ROOT / "importing").write_text("")
deadline = time.monotonic() + 60  # the test lets it finish long before
while not (ROOT / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.02)


def get():
    return {"slow": "loaded"}
"""


def test_a_slow_import_does_not_stop_the_server_serving_the_previous_code(
    tmp_path: Path,
) -> None:
    root = scaffold(tmp_path)
    args = ["--port", "0", "--reload-timeout", "120"]
    with running_dev(root, tmp_path / "dev.log", args, _env()) as dev:
        (root / "api" / "slow.py").write_text(SLOW_IMPORT, encoding="utf-8")
        until(lambda: (root / "importing").exists(), "the reload to import api/slow.py")
        # the import cannot finish before the file "go" exists: these are served meanwhile
        assert httpx.get(dev.url + "/", timeout=WAIT).status_code == 200
        assert httpx.get(dev.url + "/slow", timeout=WAIT).status_code == 404  # the old code
        pushed = httpx.post(dev.url + "/emails", json={"to": "a@example.com"}, timeout=WAIT)
        job_id = pushed.json()["job_id"]
        until(lambda: f"emails job {job_id} ok" in dev.output(), "the job, on the old code")
        assert not (root / "go").exists()
        (root / "go").write_text("")
        until(
            lambda: httpx.get(dev.url + "/slow", timeout=WAIT).status_code == 200,
            "the new code",
        )
        assert httpx.get(dev.url + "/slow", timeout=WAIT).json() == {"slow": "loaded"}


def test_an_endless_loop_at_import_is_abandoned_and_the_old_code_keeps_serving(
    tmp_path: Path,
) -> None:
    root = scaffold(tmp_path)
    args = ["--port", "0", "--reload-timeout", "2"]
    with running_dev(root, tmp_path / "dev.log", args, _env()) as dev:
        spin = root / "lib" / "spin.py"
        spin.write_text("n = 0\nwhile True:\n    n += 1\n", encoding="utf-8")
        until(lambda: "reloaded" in dev.output(), "a reload (nothing imports lib/spin.py yet)")
        route = "import lib.spin\n\n\ndef get():\n    return {'n': lib.spin.n}\n"
        (root / "api" / "loop.py").write_text(route, encoding="utf-8")
        until(lambda: "reload gave up after 2 s: lib/spin.py:" in dev.output(), "the error")
        assert "still serving the previous code" in dev.output()
        assert "--reload-timeout" in dev.output()
        assert httpx.get(dev.url + "/", timeout=WAIT).status_code == 200
        assert httpx.get(dev.url + "/loop", timeout=WAIT).status_code == 404
        # the abandoned import was stopped (it held lib.spin's import lock): the fix loads
        spin.write_text("n = 7\n", encoding="utf-8")
        until(lambda: httpx.get(dev.url + "/loop", timeout=WAIT).status_code == 200, "the fix")
        assert httpx.get(dev.url + "/loop", timeout=WAIT).json() == {"n": 7}
        dev.process.send_signal(signal.SIGINT)
        assert exited(dev.process, "qr dev") == 0
