"""qr's own files are private whatever the umask: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from qr.cli.deploy.versions import DeploymentLog, Record
from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.local.private import private_dir, write_private


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_and_private_dir(tmp_path: Path) -> None:
    path = write_private(tmp_path / "a" / "b" / "state.json", "{}\n")
    assert (_mode(tmp_path / "a"), _mode(tmp_path / "a" / "b"), _mode(path)) == (
        0o700,
        0o700,
        0o600,
    )
    assert path.read_text() == "{}\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # no temporary left
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    private_dir(loose)  # one an older qr made readable is tightened
    assert _mode(loose) == 0o700


def test_queue_database_and_its_journal_files(tmp_path: Path) -> None:
    path = tmp_path / DB_PATH
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)  # left by an older qr
    engine = Engine(path)
    try:
        journals = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in journals)
        assert [_mode(p) for p in (path, *journals)] == [0o600, 0o600, 0o600]
        assert _mode(path.parent) == 0o700
    finally:
        engine.close()


def test_deployment_log(tmp_path: Path) -> None:
    log = DeploymentLog(tmp_path)
    log.append(Record("production", "deploy", "3", None, "2026-01-01T00:00:00Z", "me"))
    assert _mode(tmp_path / ".qr" / "deployments.json") == 0o600
    assert [r.version for r in log.records()] == ["3"]
