"""Docker missing or stopped: the two errors say which, and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
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
