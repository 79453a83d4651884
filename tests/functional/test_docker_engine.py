"""Docker missing or stopped: the two errors say which, and how to fix it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qr.cli.docker.engine import connect, not_running_error
from qr.cli.errors import QrError
from tests.conftest import MakeProject


def test_engine_not_reachable_says_how_to_start_it(tmp_path: Path) -> None:
    host = f"unix://{tmp_path / 'docker.sock'}"
    with pytest.raises(QrError) as failure:
        connect({"DOCKER_HOST": host, "PATH": ""}, socket=tmp_path / "docker.sock")
    assert failure.value.message.startswith("Docker is not running")
    assert host in failure.value.message
    assert "systemctl start docker" in failure.value.hint


def test_docker_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    error = not_running_error("unix:///x", {"PATH": str(tmp_path)}, "nope", tmp_path / "sock")
    assert error.message.startswith("Docker is not installed")
    assert "apt-get install docker.io" in error.hint
    assert "without --docker" in error.hint


def test_qr_dev_docker_without_an_engine_exits_with_the_error(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"api/index.py": "def get():\n    return {}\n"})
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'none.sock'}", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "qr.cli", "dev", "--docker", "--port", "0"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "error: Docker is not running" in result.stderr
    assert "systemctl start docker" in result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def _silent_engine(family: socket.AddressFamily, address: str | tuple[str, int]) -> Iterator[str]:
    """A server that accepts connections and never answers (a hung engine); yields DOCKER_HOST."""
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    server.listen()
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    if family == socket.AF_UNIX:
        host = f"unix://{address}"
    else:
        host = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        yield host
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        server.close()


def test_engine_that_never_answers_is_not_running_after_a_short_timeout() -> None:
    with (
        _silent_engine(socket.AF_INET, ("127.0.0.1", 0)) as host,
        pytest.raises(QrError) as failure,
    ):
        connect({"DOCKER_HOST": host, "PATH": ""}, ping_timeout=0.5)
    assert failure.value.message.startswith("Docker is not running")
    assert host in failure.value.message
    assert "did not answer within 0.5 s" in failure.value.message
    assert "systemctl start docker" in failure.value.hint


def test_qr_dev_docker_with_a_hung_engine_says_so_within_seconds(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"api/index.py": "def get():\n    return {}\n"})
    with _silent_engine(socket.AF_UNIX, str(tmp_path / "hung.sock")) as host:
        env = {**os.environ, "DOCKER_HOST": host, "NO_COLOR": "1"}
        # The SDK's own timeout is 120 s: 60 s here means the engine check gave up first.
        result = subprocess.run(
            [sys.executable, "-m", "qr.cli", "dev", "--docker", "--port", "0"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "error: Docker is not running" in result.stderr
    assert "did not answer within 5 s" in result.stderr
    assert "Traceback" not in result.stderr
