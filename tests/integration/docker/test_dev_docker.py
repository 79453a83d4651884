"""``qr dev --docker`` end to end: a scaffolded project served by a real ``qr dev --docker`` process.

The handlers run in warm containers of the local base image (``scripts/docker-up``) with host
networking, from the deploy bundle, through ``qr.runtime.aws.entry.handler`` and the production
AWS adapters pointed at qr's local endpoints. One server for the module; tests run in file order
and the last one stops it. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from qr.cli.docker.pool import PROJECT_LABEL
from qr.runtime.local.engine import DB_PATH
from tests.integration.docker.conftest import BASE_IMAGE, CACHE
from tests.integration.test_dev_server import (
    MIDDLEWARE,
    PUSH,
    DevProcess,
    running_dev,
    scaffold,
)

# The module's server starts in its first test's setup and may build the bundle and the function
# image from a cold engine first: serve_docker_dev allows that 300 s, so the limit is above it.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

WAIT = 60.0

NOTIFY = """
from qr.runtime import socket


def handler(payload, job):
    print(f"notifying {payload['user']} of job {job.job_id}")
    socket.to(payload["user"]).send({"job": payload["n"], "job_id": job.job_id})
"""


LOGGED = """
import logging


def get():
    logging.getLogger("app").warning("a log record from the container")
    return {"logged": True}
"""


@contextlib.contextmanager
def serve_docker_dev(client: Any, base: Path, environment: dict[str, str]) -> Iterator[DevProcess]:
    """``qr dev --docker`` on a scaffolded project (with a queue and a push route) under ``base``;
    ``environment`` adds to the process's variables (the engine, the network)."""
    root = scaffold(base)
    config = root / "qr.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("runtime: python3.12", "runtime: python3.11"), encoding="utf-8")
    (root / "queues" / "notify.py").write_text(NOTIFY, encoding="utf-8")
    (root / "socket" / "_middleware.py").write_text(MIDDLEWARE, encoding="utf-8")
    (root / "api" / "push.py").write_text(PUSH, encoding="utf-8")
    (root / "api" / "logged.py").write_text(LOGGED, encoding="utf-8")
    (root / ".env").write_text("GREETING=Hi\n", encoding="utf-8")
    with docker_dev(client, root, base / "dev.log", environment) as server:
        yield server


@contextlib.contextmanager
def docker_dev(
    client: Any, root: Path, log: Path, environment: dict[str, str]
) -> Iterator[DevProcess]:
    """``qr dev --docker`` on the project at ``root`` (its runtime the local base image's
    Python), console in ``log``; its containers are removed after the server has stopped."""
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "QR_DOCKER_BASE_IMAGE": BASE_IMAGE,
        "XDG_CACHE_HOME": str(CACHE.parent / "xdg-cache"),
        **environment,
    }
    args = ["--docker", "--port", "0"]
    try:
        with running_dev(root, log, args, env, timeout=300) as server:
            yield server
    finally:  # after the server is gone: its containers
        for container in _containers(client, root):
            container.remove(force=True)


@pytest.fixture(scope="module")
def dev(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("docker-dev")
    with serve_docker_dev(docker_client, base, {"QR_DOCKER_NETWORK": "host"}) as server:
        yield server


def _containers(client: Any, root: Path) -> list[Any]:
    """This project's containers (other projects may be using the same engine)."""
    label = f"{PROJECT_LABEL}={root.resolve()}"
    found: list[Any] = client.containers.list(all=True, filters={"label": label})
    return found


@contextlib.contextmanager
def _ws(dev: DevProcess, user: str) -> Iterator[ClientConnection]:
    with connect(dev.ws_url(), open_timeout=WAIT) as ws:
        ws.send(json.dumps({"user": user}))
        assert json.loads(ws.recv(timeout=WAIT)) == {"ready": user}
        yield ws


def test_http_route_runs_in_a_container(dev: DevProcess) -> None:
    response = httpx.get(dev.url + "/", timeout=WAIT)
    assert response.status_code == 200
    assert response.json() == {"message": "Hi from qr"}  # .env reaches the container
    assert httpx.get(dev.url + "/items/5", timeout=WAIT).json() == {"id": "5", "name": "Item 5"}
    assert httpx.get(dev.url + "/nope", timeout=WAIT).status_code == 404
    # the console batches its lines: wait for them rather than read at once
    access = re.compile(r"HTTP +GET /items/5 200 [0-9.]+ms [0-9a-f-]{36}\n")
    dev.until(
        lambda: "warm container(s)" in dev.output() and access.search(dev.output()), "log lines"
    )  # the access line as in-process (the dev console's own, no log record per request)


def test_a_log_record_reaches_the_console_at_once(dev: DevProcess) -> None:
    """Not only when some later output ends a line (Docker's log driver splits on newlines)."""
    assert httpx.get(dev.url + "/logged", timeout=WAIT).json() == {"logged": True}
    expected = "WARNING app: a log record from the container"
    dev.until(lambda: expected in dev.output(), "the handler's log record", WAIT)


def test_websocket_message_is_answered(dev: DevProcess) -> None:
    with _ws(dev, "u1") as ws:
        ws.send(json.dumps({"hello": 1}))
        assert json.loads(ws.recv(timeout=WAIT)) == {"echo": {"hello": 1}}


def test_queued_job_runs_and_reaches_the_websocket(dev: DevProcess) -> None:
    with _ws(dev, "u2") as ws:
        response = httpx.post(dev.url + "/push", json={"user": "u2", "n": 7}, timeout=WAIT)
        job_id = response.json()["job_id"]
        assert json.loads(ws.recv(timeout=WAIT)) == {"job": 7, "job_id": job_id}
        pushed = dev.qr("dev", "queue", "notify", json.dumps({"user": "u2", "n": 8}))
        assert pushed.returncode == 0, pushed.stderr
        assert json.loads(ws.recv(timeout=WAIT))["job"] == 8  # pushed by another process
    dev.until(lambda: f"notify job {job_id} ok" in dev.output(), "the job's log line", WAIT)
    # the container's output, in the console
    dev.until(lambda: f"notifying u2 of job {job_id}" in dev.output(), "the job's output", WAIT)


def test_schedule_fired_with_qr_dev_schedule(dev: DevProcess) -> None:
    result = dev.qr("dev", "schedule", "cleanup")
    assert result.returncode == 0, result.stderr
    assert "cleanup ran as job" in result.stdout
    job_id = result.stdout.split("as job ", 1)[1].split()[0]
    dev.until(lambda: f"cleanup run {job_id}" in dev.output(), "the schedule's output", WAIT)


def test_code_change_restarts_the_containers(dev: DevProcess) -> None:
    index = dev.root / "api" / "index.py"
    index.write_text('def get():\n    return {"message": "edited"}\n', encoding="utf-8")
    dev.until(
        lambda: httpx.get(dev.url + "/", timeout=WAIT).json() == {"message": "edited"},
        "the edited handler in the containers",
        WAIT,
    )


def test_env_change_reaches_the_restarted_containers_through_ssm(dev: DevProcess) -> None:
    index = dev.root / "api" / "index.py"
    source = 'import os\n\n\ndef get():\n    return {"message": os.environ["GREETING"]}\n'
    index.write_text(source, encoding="utf-8")
    (dev.root / ".env").write_text("GREETING=Hello again\n", encoding="utf-8")
    dev.until(
        lambda: httpx.get(dev.url + "/", timeout=WAIT).json() == {"message": "Hello again"},
        "the new .env value, loaded from the local SSM endpoint at cold start",
        WAIT,
    )


def test_the_bundle_and_its_cache_are_private(dev: DevProcess) -> None:
    """``.qr/docker`` and ``.qr/cache`` are 0700 like ``.qr/dev``, the bundle 0600; the task
    dirs inside keep their modes: each is mounted at ``/var/task`` for the container's user."""
    qr_dir = dev.root / ".qr"
    folders = [qr_dir / "docker", qr_dir / "cache", qr_dir / "cache" / "deps"]
    assert {f.name: _mode(f) for f in folders} == {f.name: 0o700 for f in folders}
    assert _mode(qr_dir / "docker" / "bundle.zip") == 0o600
    tasks = list((qr_dir / "docker").glob("task-*"))
    assert tasks and all(_mode(task) & 0o005 == 0o005 for task in tasks)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ctrl_c_stops_and_removes_the_containers(dev: DevProcess, docker_client: Any) -> None:
    dev.process.send_signal(signal.SIGINT)
    assert dev.process.wait(timeout=WAIT) == 0
    left = _containers(docker_client, dev.root)
    assert left == []


def test_containers_the_engine_refuses_to_create_are_a_qr_error(
    docker_client: Any, tmp_path: Path
) -> None:
    """Docker cannot bind-mount a path with ':' in it: the dev server stops at start with
    qr's error (what, why, how to fix) and exit code 1, not uvicorn's "Application startup
    failed" and its exit code 3."""
    base = tmp_path / "co:lon"
    base.mkdir()
    root = scaffold(base)
    config = root / "qr.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("runtime: python3.12", "runtime: python3.11"), encoding="utf-8")
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "QR_DOCKER_BASE_IMAGE": BASE_IMAGE,
        "QR_DOCKER_NETWORK": "host",
        "XDG_CACHE_HOME": str(CACHE.parent / "xdg-cache"),
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "qr.cli", "dev", "--docker", "--port", "0", "--no-reload"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        for container in _containers(docker_client, root):
            container.remove(force=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "error: the function's containers did not start: invalid volume specification" in output
    assert "move the project to a path without ':'" in output
    assert "Application startup failed" not in output
    assert "Traceback" not in output


STUCK = """
import time


def handler(payload, job):
    print(f"start {payload['n']} attempt {job.received_count}", flush=True)
    time.sleep(600)
"""


def test_a_job_given_back_at_ctrl_c_counts_its_attempt(docker_client: Any, tmp_path: Path) -> None:
    """As the in-process worker does: the batch reached the function, so the handler ran and
    the receive counts (a handler that takes the server down cannot loop forever)."""
    root = scaffold(tmp_path)
    config = root / "qr.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("runtime: python3.12", "runtime: python3.11"), encoding="utf-8")
    (root / "queues" / "stuck.py").write_text(STUCK, encoding="utf-8")
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "QR_DOCKER_BASE_IMAGE": BASE_IMAGE,
        "QR_DOCKER_NETWORK": "host",
        "XDG_CACHE_HOME": str(CACHE.parent / "xdg-cache"),
    }
    args = ["--docker", "--port", "0", "--grace", "1"]
    try:
        with running_dev(root, tmp_path / "dev.log", args, env, timeout=300) as dev:
            assert dev.qr("dev", "queue", "stuck", '{"n": 1}').returncode == 0
            dev.until(lambda: "start 1 attempt 1" in dev.output(), "the job to start", WAIT)
            dev.process.send_signal(signal.SIGINT)
            assert dev.process.wait(timeout=WAIT) == 0
    finally:
        for container in _containers(docker_client, root):
            container.remove(force=True)
    with contextlib.closing(sqlite3.connect(root / DB_PATH)) as db:
        rows = db.execute("SELECT received_count, receipt FROM jobs").fetchall()
    assert rows == [(1, None)]  # back on the queue, its attempt counted
