"""Finding and talking to a running dev server (``qr dev schedule NAME``).

A running ``qr dev`` writes ``.qr/dev/server.json`` (host, port, pid, url) once it listens and
removes it when it stops. Commands that act on the running server read it and call the control
endpoint (``qr.cli.dev.app``) over HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from qr.cli.errors import QrError

STATE_FILE = Path(".qr/dev/server.json")


def write_state(root: Path, host: str, port: int) -> Path:
    path = root / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    connect = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    data = {"host": host, "port": port, "pid": os.getpid(), "url": f"http://{connect}:{port}"}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def remove_state(root: Path) -> None:
    path = root / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def server_url(root: Path) -> str:
    """The URL of the dev server running this project; a clear error when there is none."""
    path = root / STATE_FILE
    hint = "start it in another terminal with: qr dev"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QrError(f"qr dev is not running for {root}", hint) from None
    except (OSError, ValueError) as exc:
        raise QrError(f"cannot read {path}: {exc}", hint) from None
    if not _alive(int(data.get("pid", 0))):
        raise QrError(f"qr dev is not running for {root} (stale {STATE_FILE})", hint)
    return str(data["url"])


def fire_schedule(root: Path, name: str, *, timeout: float = 930.0) -> dict[str, Any]:
    """Run schedule ``name`` on the running server now; returns its outcome."""
    url = server_url(root)
    try:
        response = httpx.post(f"{url}/_qr/schedules/{name}", timeout=timeout)
    except httpx.HTTPError as exc:
        raise QrError(
            f"cannot reach qr dev at {url}: {exc}", "is the server still running?"
        ) from None
    data: dict[str, Any] = response.json()
    if response.status_code == 404:
        raise QrError(str(data.get("error")), "run qr routes to list the project's schedules")
    response.raise_for_status()
    return data


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
