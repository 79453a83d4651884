"""qr's private files on the developer's machine: folders 0700, files 0600, whatever the umask.

The queue database (payloads, results), the dev server file (its control token), the Terraform
state and the deploy log are for the user who runs qr only. Modes are set explicitly after
creation, so a permissive umask (0000 in some containers) cannot widen them, and files or
folders an older qr left readable are tightened the next time they are opened.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``mkdir -p path``: every folder it creates and ``path`` itself end up 0700."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=DIR_MODE)
        folder.chmod(DIR_MODE)
    path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing (its folder with ``private_dir``); mode 0600."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: str) -> Path:
    """Replace ``path`` atomically with ``data`` (UTF-8), mode 0600 from the first byte on.

    The temporary file is unique to this process, so two writers never mix their bytes.
    """
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
    temporary.replace(path)
    return path
