"""``qr build`` end to end on the scaffold, with the real bundle step (pip, platform wheels)."""

from __future__ import annotations

import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qr.cli import scaffold

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_qr_build_scaffold(tmp_path: Path) -> None:
    root = tmp_path / "app"
    scaffold.render(root, "default", scaffold.Answers(name="app"))
    result = subprocess.run(
        [sys.executable, "-m", "qr.cli", "build"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        umask=0,  # qr's own folders and files are private whatever the umask
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MB zipped" in result.stdout
    build = root / ".qr" / "build" / "production"
    private = [
        root / ".qr" / "build",
        build,
        root / ".qr" / "cache",
        root / ".qr" / "cache" / "deps",
    ]
    assert {str(p): _mode(p) for p in private} == {str(p): 0o700 for p in private}
    assert _mode(build / "bundle.zip") == 0o600
    with zipfile.ZipFile(build / "bundle.zip") as archive:
        names = set(archive.namelist())
    assert "qr/runtime/aws/entry.py" in names
    assert "api/index.py" in names
    tf = (build / "terraform" / "function.tf").read_text()
    assert 'handler          = "qr.runtime.aws.entry.handler"' in tf
