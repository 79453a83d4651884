"""``qr dev`` as a newcomer uses it: a scaffolded project served by a real ``qr dev`` process.

One server (module scope) on a free port; the tests run in file order and the last one stops it
with Ctrl+C. Every wait has a deadline (``DevProcess.until``, ``tests.waiting``). The schedule clock
runs 60x faster (``QR_DEV_CLOCK_SCALE``), so ``rate(1 minute)`` fires about every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from qr.runtime.local.engine import DB_PATH, Engine
from tests.waiting import WAIT, reaped, until

pytestmark = pytest.mark.integration

T = TypeVar("T")

NOTIFY = '''
"""Tell the user over WebSocket that their job ran."""
from qr.runtime import socket


def handler(payload, job):
    socket.to(payload["user"]).send({"job": payload["n"], "job_id": job.job_id})
'''
MIDDLEWARE = """
from qr.runtime import socket


def authenticate(data):
    if isinstance(data, dict) and "user" in data:
        socket.send({"ready": data["user"]})
        return {"id": data["user"]}
    return None
"""
TICK = """
schedule = "rate(1 minute)"


def handler(job):
    print(f"tick {job.schedule_name} at {job.scheduled_at:%H:%M}")
"""
SLOW = """
import asyncio


async def handler(payload):
    print("slow job started", flush=True)
    await asyncio.sleep(120)
"""
WHOAMI = """
def get(headers, request, cookies):
    return {
        "name": headers.get("x-name"),
        "request": request.headers.get("x-name"),
        "cookie": cookies.get("name"),
        "raw": [v.hex() for k, v in request.scope["headers"] if k == b"x-name"],
    }
"""
PUSH = """
from qr.runtime import queues


def post(body):
    return {"job_id": queues["notify"].push(body)}
"""


@dataclass
class DevProcess:
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/"

    def until(self, check: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
        """``tests.waiting.until`` showing this server's console when it gives up."""
        return until(check, what, timeout, output=self.output)

    def qr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qr.cli", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def scaffold(base: Path) -> Path:
    """``qr init`` a project at ``base/app``; returns its root."""
    subprocess.run(
        [sys.executable, "-m", "qr.cli", "init", str(base / "app"), "--yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return base / "app"


@contextlib.contextmanager
def running_dev(
    root: Path, log: Path, args: list[str], env: dict[str, str], timeout: float = WAIT
) -> Iterator[DevProcess]:
    """``qr dev ARGS`` in ``root`` (its console in ``log``) until the block ends; ready once it
    has written ``server.json``."""
    command = " ".join(["qr dev", *args])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "qr.cli", "dev", *args],
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    state = root / ".qr" / "dev" / "server.json"

    def started() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"{command} exited:\n{log.read_text()}")
        return json.loads(state.read_text())["url"] if state.exists() else None

    with reaped(process):
        url = until(started, f"{command} to listen", timeout, output=log.read_text)
        yield DevProcess(root, process, log, url)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("dev")
    root = scaffold(base)
    (root / "queues" / "notify.py").write_text(NOTIFY, encoding="utf-8")
    (root / "socket" / "_middleware.py").write_text(MIDDLEWARE, encoding="utf-8")
    (root / "schedules" / "tick.py").write_text(TICK, encoding="utf-8")
    (root / "api" / "push.py").write_text(PUSH, encoding="utf-8")
    (root / "api" / "whoami.py").write_text(WHOAMI, encoding="utf-8")
    (root / "queues" / "slow.py").write_text(SLOW, encoding="utf-8")
    (root / ".env").write_text("GREETING=Hi\nFROM_DOTENV=file\n", encoding="utf-8")
    env = {**os.environ, "QR_DEV_CLOCK_SCALE": "60", "NO_COLOR": "1", "FROM_SHELL": "shell"}
    args = ["--port", "0", "--env", "GREETING=Howdy"]
    with running_dev(root, base / "dev.log", args, env) as server:
        yield server


@contextlib.contextmanager
def _ws(dev: DevProcess, user: str) -> Iterator[ClientConnection]:
    with connect(dev.ws_url(), open_timeout=WAIT) as ws:
        ws.send(json.dumps({"user": user}))
        assert json.loads(ws.recv(timeout=WAIT)) == {"ready": user}
        yield ws


def test_serves_http_with_env_precedence(dev: DevProcess) -> None:
    response = httpx.get(dev.url + "/", timeout=WAIT)
    assert response.status_code == 200
    assert response.json() == {"message": "Howdy from qr"}  # --env beats .env
    output = dev.output()
    assert "/items/[id]" in output  # the handler table
    assert f"ws://localhost:{dev.url.rsplit(':', 1)[1]}" in output


def test_header_values_outside_latin_1_reach_the_handler_as_sent(dev: DevProcess) -> None:
    """UTF-8 header bytes from a raw client: the handler reads what was sent, as on Lambda
    (tests/integration/test_lambda_entry.py has the same route and answer)."""
    host, port = dev.url.removeprefix("http://").rsplit(":", 1)
    request = (
        "GET /whoami HTTP/1.1\r\nHost: localhost\r\nx-name: 日本\r\n"
        "Cookie: name=José\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=WAIT) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert json.loads(body) == {
        "name": "日本",
        "request": "日本",
        "cookie": "José",
        "raw": ["日本".encode().hex()],
    }


def test_job_pushed_over_http_reaches_the_websocket(dev: DevProcess) -> None:
    with _ws(dev, "u1") as ws:
        response = httpx.post(dev.url + "/push", json={"user": "u1", "n": 7}, timeout=WAIT)
        job_id = response.json()["job_id"]
        assert json.loads(ws.recv(timeout=WAIT)) == {"job": 7, "job_id": job_id}
    dev.until(lambda: f"notify job {job_id} ok" in dev.output(), "the job's log line")


def test_job_pushed_with_qr_dev_queue_reaches_the_websocket(dev: DevProcess) -> None:
    with _ws(dev, "u4") as ws:
        result = dev.qr("dev", "queue", "notify", '{"user": "u4", "n": 8}', "--json")
        assert result.returncode == 0, result.stderr
        job_id = json.loads(result.stdout)["job_id"]
        assert json.loads(ws.recv(timeout=WAIT)) == {"job": 8, "job_id": job_id}


def _closed_with(dev: DevProcess, message: str | list[str]) -> tuple[int, str]:
    """Send ``message`` (a list: one frame per item) and return the close code and reason."""
    with _ws(dev, "u3") as ws, pytest.raises(ConnectionClosed) as info:
        ws.send(message)
        ws.recv(timeout=WAIT)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def test_api_gateway_limits_and_bad_frames_close_the_connection_the_server_goes_on(
    dev: DevProcess,
) -> None:
    kb = 1024
    # one frame over 32 KB: API Gateway closes with 1009 even though the message is small enough
    code, reason = _closed_with(dev, "x" * (32 * kb + 1))
    assert (code, reason) == (
        1009,
        f"frame of {32 * kb + 1} bytes is over API Gateway's 32 KB frame limit",
    )
    dev.until(lambda: "split messages over 32 KB into frames" in dev.output(), "the console line")
    # over 128 KB in all, even in small frames
    assert _closed_with(dev, ["x" * (32 * kb)] * 4 + ["x"])[0] == 1009
    # 96 KB in 32 KB frames is fine
    with _ws(dev, "u3") as ws:
        ws.send(["y" * (32 * kb)] * 3)
        assert json.loads(ws.recv(timeout=WAIT)) == {"echo": "y" * (96 * kb)}
    assert asyncio.run(_invalid_utf8_close_code(dev.ws_url())) == 1007
    with _ws(dev, "u3") as ws:
        ws.send("ping")
        assert json.loads(ws.recv(timeout=WAIT)) == {"echo": "ping"}


async def _invalid_utf8_close_code(url: str) -> int | None:
    """Send a text frame that is not UTF-8 (no client API does that on purpose)."""
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
        ws.send_data()
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout=WAIT)
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None


def test_schedule_fires_on_its_rate_and_on_demand(dev: DevProcess) -> None:
    dev.until(lambda: "SCHED tick job" in dev.output(), "rate(1 minute) to fire")
    assert "; next run " in dev.output()
    result = dev.qr("dev", "schedule", "tick")
    assert result.returncode == 0, result.stderr
    assert "tick ran as job" in result.stdout
    missing = dev.qr("dev", "schedule", "nope")
    assert missing.returncode == 1
    assert "no schedule named 'nope'" in missing.stderr


def test_edit_a_handler_and_see_the_change(dev: DevProcess) -> None:
    index = dev.root / "api" / "index.py"
    index.write_text('def get():\n    return {"message": "edited"}\n', encoding="utf-8")
    dev.until(
        lambda: httpx.get(dev.url + "/", timeout=WAIT).json() == {"message": "edited"},
        "the edited handler",
    )
    dev.until(lambda: "reloaded" in dev.output(), "the reload line")  # the console batches lines


def test_queue_handler_reload_keeps_the_engine_and_its_jobs(dev: DevProcess) -> None:
    notify = dev.root / "queues" / "notify.py"
    reloads = dev.output().count("reloaded")
    # new code and a new config: the worker is replaced, the engine and its queue are not
    notify.write_text(
        NOTIFY.replace('"n"]', '"n"], "v": 2') + "\nconfig = {'timeout': 20}\n", encoding="utf-8"
    )
    dev.until(lambda: dev.output().count("reloaded") > reloads, "the reload")
    with _ws(dev, "u5") as ws:
        result = dev.qr("dev", "queue", "notify", '{"user": "u5", "n": 9}', "--json")
        job_id = json.loads(result.stdout)["job_id"]
        assert json.loads(ws.recv(timeout=WAIT)) == {"job": 9, "v": 2, "job_id": job_id}


def test_broken_file_shows_the_error_and_fixing_recovers(dev: DevProcess) -> None:
    index = dev.root / "api" / "index.py"
    good = index.read_text(encoding="utf-8")
    index.write_text('def get():\n    return {"message": (\n', encoding="utf-8")

    def broken() -> httpx.Response | None:
        response = httpx.get(dev.url + "/", timeout=WAIT)
        return response if response.status_code == 500 else None

    body = dev.until(broken, "the error response").json()
    assert body["problems"][0]["file"] == "api/index.py"
    assert body["problems"][0]["line"] == 2
    assert "api/index.py:2" in body["error"]
    # the other routes keep serving the last good code
    assert httpx.get(dev.url + "/items/5", timeout=WAIT).json() == {"id": "5", "name": "Item 5"}
    dev.until(lambda: "syntax error" in dev.output(), "the console error")
    index.write_text(good, encoding="utf-8")
    dev.until(lambda: httpx.get(dev.url + "/", timeout=WAIT).status_code == 200, "recovery")


def test_qr_jobs_replay_cancel_and_the_trace_of_the_pushing_request(dev: DevProcess) -> None:
    with _ws(dev, "u9") as ws:
        response = httpx.post(dev.url + "/push", json={"user": "u9", "n": 9}, timeout=WAIT)
        job_id = response.json()["job_id"]
        # (an earlier test may have edited the handler: only the job id is certain)
        assert json.loads(ws.recv(timeout=WAIT))["job_id"] == job_id
        dev.until(lambda: f"notify job {job_id} ok" in dev.output(), "the job's log line")
        replayed = dev.qr("jobs", "replay", job_id, "--json")
        assert replayed.returncode == 0, replayed.stderr
        new_id = json.loads(replayed.stdout)["new_job_id"]
        assert json.loads(ws.recv(timeout=WAIT))["job_id"] == new_id
    # the job records the request that pushed it; the request's trace lists the job
    page = httpx.get(f"{dev.url}/_qr/jobs/{job_id}", timeout=WAIT).text
    found = re.search(r'id="job-origin">http <a href="/_qr/trace/([0-9a-f]+)"', page)
    assert found is not None, page
    trace = httpx.get(f"{dev.url}/_qr/trace/{found.group(1)}", timeout=WAIT).text
    assert "POST /push</strong> → 200" in trace
    assert f'data-job-id="{job_id}"' in trace and 'data-status="succeeded"' in trace
    assert f"notify job {job_id} ok" in trace  # the job's own console line
    # the socket message the job sent to u9, recorded with the job as its origin
    assert f'class="trace-socket" data-origin="{job_id}" data-user="u9"' in trace
    replay_trace = httpx.get(f"{dev.url}/_qr/trace/{job_id}", timeout=WAIT).text
    assert f'data-job-id="{new_id}"' in replay_trace  # the replay links back to its original
    queued = dev.qr(
        "dev", "queue", "notify", '{"user": "nobody", "n": 1}', "--delay", "600", "--json"
    )
    delayed_id = json.loads(queued.stdout)["job_id"]
    cancelled = dev.qr("jobs", "cancel", delayed_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {delayed_id} is cancelled" in cancelled.stdout
    missing = dev.qr("jobs", "retry", "no-such-job")
    assert missing.returncode == 1 and "no job 'no-such-job'" in missing.stderr
    # the dashboard's URL is printed at start
    assert f"dashboard: {dev.url.replace('127.0.0.1', 'localhost')}/_qr/" in dev.output()


def test_ctrl_c_closes_sockets_with_1001_gives_jobs_back_and_stops(dev: DevProcess) -> None:
    pushed = dev.qr("dev", "queue", "slow", "{}", "--json")
    job_id = json.loads(pushed.stdout)["job_id"]
    dev.until(lambda: "slow job started" in dev.output(), "the slow job to start")
    with _ws(dev, "u2") as ws, pytest.raises(ConnectionClosed) as info:
        dev.process.send_signal(signal.SIGINT)
        ws.recv(timeout=WAIT)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1001
    assert dev.process.wait(timeout=WAIT) == 0
    assert not (dev.root / ".qr" / "dev" / "server.json").exists()
    # the interrupted job is back on its queue, ready for the next start
    engine = Engine(dev.root / DB_PATH)
    try:
        (stats,) = engine.stats(["slow"])
        assert (stats.depth, stats.in_flight, stats.dead) == (1, 0, 0)
    finally:
        engine.close()
    assert f"slow job {job_id} released" in dev.output()
