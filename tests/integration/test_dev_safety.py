"""``qr dev`` against a hostile web page, a careless second start and a broken file.

One real ``qr dev`` process (module scope) on a scaffolded project; every wait is bounded. It
runs under umask 000, so the private-file modes it checks come from qr, not from the umask.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_dev_server import DevProcess, running_dev, scaffold
from tests.waiting import WAIT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("safety")
    root = scaffold(base)
    env = {**os.environ, "NO_COLOR": "1"}
    previous = os.umask(0)  # the child inherits it
    try:
        with running_dev(root, base / "dev.log", ["--port", "0"], env) as server:
            os.umask(previous)
            yield server
    finally:
        os.umask(previous)


def _state(dev: DevProcess) -> dict[str, object]:
    data: dict[str, object] = json.loads((dev.root / ".qr/dev/server.json").read_text())
    return data


def _fire(dev: DevProcess, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(dev.url + "/_qr/schedules/cleanup", headers=headers, timeout=WAIT)


def test_control_endpoint_answers_only_the_cli(dev: DevProcess) -> None:
    token = str(_state(dev)["token"])
    port = dev.url.rsplit(":", 1)[1]
    evil_page = _fire(dev, {"Origin": "http://evil.example", "x-qr-token": token})
    assert evil_page.status_code == 403
    assert "Origin 'http://evil.example'" in evil_page.json()["error"]
    rebound = _fire(dev, {"Host": f"evil.example:{port}", "x-qr-token": token})
    assert rebound.status_code == 403
    assert "Host 'evil.example:" in rebound.json()["error"]
    assert _fire(dev, {}).status_code == 403  # no token
    assert _fire(dev, {"x-qr-token": token[:-1] + "x"}).status_code == 403
    assert httpx.get(dev.url + "/_qr/health", timeout=WAIT).status_code == 403
    # none of those ran the schedule
    assert "cleanup job" not in dev.output()
    allowed = _fire(dev, {"x-qr-token": token, "Host": f"localhost:{port}"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["ok"] is True
    # the CLI sends the token
    result = dev.qr("dev", "schedule", "cleanup", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_private_files_are_0600_in_0700_folders(dev: DevProcess) -> None:
    # a job makes SQLite write its -wal file while the server holds the database open
    assert dev.qr("dev", "queue", "emails", '{"to": "a@example.com"}').returncode == 0
    folder = dev.root / ".qr" / "dev"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((dev.root / ".qr").stat().st_mode) == 0o700
    names = {p.name for p in folder.iterdir()}
    assert {"queues.db", "queues.db-wal", "queues.db-shm", "server.json"} <= names, names
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_second_qr_dev_is_refused_and_leaves_the_first_ones_file(dev: DevProcess) -> None:
    before = (dev.root / ".qr/dev/server.json").read_bytes()
    result = dev.qr("dev", "--port", "0")
    assert result.returncode == 1
    pid = _state(dev)["pid"]
    assert "qr dev is already running" in result.stderr
    assert f"pid {pid}" in result.stderr and f"port {_state(dev)['port']}" in result.stderr
    assert f"kill {pid}" in result.stderr
    assert (dev.root / ".qr/dev/server.json").read_bytes() == before
    assert dev.qr("dev", "schedule", "cleanup").returncode == 0  # the CLI still finds it


def test_port_in_use_is_a_qr_error(dev: DevProcess, tmp_path: Path) -> None:
    other = scaffold(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "qr.cli", "dev", "--port", str(port)],
            cwd=other,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "Errno" not in result.stderr + result.stdout
    assert f"port {port} is already in use on 127.0.0.1" in result.stderr
    assert "--port" in result.stderr
    assert not (other / ".qr/dev/server.json").exists()


def test_queue_commands_work_while_an_unrelated_file_is_broken(dev: DevProcess) -> None:
    broken = dev.root / "api" / "broken.py"
    broken.write_text("def get(:\n", encoding="utf-8")
    try:
        dev.until(lambda: "syntax error" in dev.output(), "the server to see the broken file")
        pushed = dev.qr("dev", "queue", "emails", '{"to": "b@example.com"}', "--json")
        assert pushed.returncode == 0, pushed.stderr
        job_id = json.loads(pushed.stdout)["job_id"]
        dev.until(lambda: f"emails job {job_id} ok" in dev.output(), "the job to run")
        listed = dev.qr("queues", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [q["queue"] for q in json.loads(listed.stdout)] == ["emails"]
        assert dev.qr("dev", "redrive", "emails").returncode == 0
        unknown = dev.qr("dev", "queue", "email", "{}")
        assert unknown.returncode == 1 and "did you mean 'emails'" in unknown.stderr.lower()
    finally:
        broken.unlink()


def test_host_other_than_loopback_warns(tmp_path: Path) -> None:
    root = scaffold(tmp_path)
    env = {**os.environ, "NO_COLOR": "1"}
    with running_dev(
        root, tmp_path / "dev.log", ["--port", "0", "--host", "0.0.0.0"], env
    ) as server:
        server.until(lambda: "reachable from the network" in server.output(), "the warning")
        assert "control endpoint" in server.output()
    (root / ".qr/dev/server.json").unlink(missing_ok=True)  # the first one was killed
    with running_dev(root, tmp_path / "dev2.log", ["--port", "0"], env) as server:
        server.until(lambda: "serving" in server.output(), "the banner")
        assert "reachable from the network" not in server.output()


def test_catch_all_route_refuses_traversal(dev: DevProcess) -> None:
    route = dev.root / "api" / "files" / "[...path].py"
    route.parent.mkdir(exist_ok=True)
    source = "def get(path):\n    return {'path': path}\n"
    route.write_text(source, encoding="utf-8")
    saved = [time.monotonic()]

    def served() -> httpx.Response | None:
        response = httpx.get(dev.url + "/files/a%2Fb", timeout=WAIT)
        if response.status_code == 200:
            return response
        # On a loaded machine the watcher can miss a file created just after its folder (the
        # new folder is watched only once its own event is handled): save it again, as a user
        # would, every 2 s.
        if time.monotonic() - saved[0] > 2:
            route.write_text(source, encoding="utf-8")
            saved[0] = time.monotonic()
        return None

    assert dev.until(served, "the new route").json() == {"path": ["a/b"]}
    for path in ("/files/..%2f..%2fetc%2fpasswd", "/files/%2e%2e/%2e%2e/etc/passwd"):
        response = httpx.get(dev.url + path, timeout=WAIT)
        assert response.status_code == 400, (path, response.text)
        assert "passwd" not in str(response.json().get("path"))
