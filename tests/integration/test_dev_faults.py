"""``qr dev`` under handler faults: real ``qr dev`` processes, every wait bounded.

* a handler that calls ``sys.exit()`` (queue sync and async, socket, schedule, HTTP) or raises
  ``KeyboardInterrupt`` fails like any handler: the server goes on serving;
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
from tests.integration.test_dev_server import WAIT, _until, running_dev, scaffold

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
        _until(lambda: _dead(root, queues), "the three jobs to reach their DLQ")
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
        _until(lambda: "socket/index.py: the handler called sys.exit(5)" in dev.output(), "log")
        assert dev.process.poll() is None

        dev.process.send_signal(signal.SIGINT)  # a real Ctrl+C still stops it
        assert dev.process.wait(timeout=WAIT) == 0
