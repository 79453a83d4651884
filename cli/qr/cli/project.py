"""Finding and loading the user's project from the CLI."""

from __future__ import annotations

from pathlib import Path

from qr.cli.errors import QrError
from qr.runtime.config import CONFIG_FILE
from qr.runtime.manifest import API_DIR, QUEUES_DIR, SCHEDULES_DIR, SOCKET_DIR, Manifest, scan

_MARKERS = (CONFIG_FILE, API_DIR, QUEUES_DIR, SOCKET_DIR, SCHEDULES_DIR)


def find_root(start: Path) -> Path:
    """The project directory: ``start`` or the nearest parent with ``qr.yaml``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if any((start / marker).exists() for marker in _MARKERS):
        return start
    raise QrError(
        f"no qr project in {start}",
        "Run the command inside a project (a folder with qr.yaml), pass --project DIR, "
        "or create one with: qr init my-app",
    )


def build_dir(root: Path, stage: str) -> Path:
    """Where ``qr build`` writes a stage: ``.qr/build/<stage>``."""
    return root / ".qr" / "build" / stage


def load_manifest(start: Path) -> Manifest:
    """Scan the project containing ``start``; project mistakes raise ``ProjectError``."""
    return scan(find_root(start))
