"""Docker missing or stopped: the two errors say which, and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qr.cli.docker.engine import connect, not_running_error
from qr.cli.errors import QrError


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
