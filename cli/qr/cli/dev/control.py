"""Finding and talking to a running dev server (``qr dev schedule NAME``, and later commands).

A running ``qr dev`` holds an exclusive lock on ``.qr/dev/server.lock`` for its whole life (the
kernel drops it when the process ends, even on ``kill -9``), so a second ``qr dev`` on the same
project learns at once that one is running. Once it listens, the lock holder writes
``.qr/dev/server.json`` (host, port, pid, url and the per-run control token; mode 0600 in a 0700
folder) and removes it when it stops. No other process writes or removes that file.

Commands that act on the running server read the file and call the control endpoint
(``qr.cli.dev.app``) with ``control_request``, which sends the token (``qr.cli.dev.guard``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from qr.cli.dev.guard import TOKEN_HEADER
from qr.cli.errors import QrError
from qr.runtime.local.private import private_file, write_private

STATE_FILE = Path(".qr/dev/server.json")
LOCK_FILE = Path(".qr/dev/server.lock")


@dataclass(frozen=True)
class ServerInfo:
    host: str
    port: int
    pid: int
    url: str
    token: str


class ServerLock:
    """The lock one running ``qr dev`` per project holds; ``acquire`` refuses a second one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        path = private_file(self.root / LOCK_FILE)
        handle = path.open("r+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise _already_running(self.root) from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None


def _already_running(root: Path) -> QrError:
    info = read_state(root)
    if info is None:
        where = "another qr dev is starting"
        fix = "wait for it, or stop it first"
    else:
        where = f"pid {info.pid}, port {info.port}, {info.url}"
        fix = f"stop it first (Ctrl+C in its terminal, or: kill {info.pid})"
    return QrError(
        f"qr dev is already running for {root} ({where})",
        f"{fix}. One project has one dev server: its queue database and schedules are shared. "
        "Use that server, or copy the project to run a second one.",
    )


def write_state(root: Path, host: str, port: int, token: str) -> Path:
    """Leave ``server.json`` for other commands; only the lock holder calls this."""
    connect = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{connect}]" if ":" in connect else connect
    data = {
        "host": host,
        "port": port,
        "pid": os.getpid(),
        "url": f"http://{shown}:{port}",
        "token": token,
    }
    return write_private(root / STATE_FILE, json.dumps(data, indent=2) + "\n")


def remove_state(root: Path) -> None:
    """Remove ``server.json`` if this process wrote it."""
    info = read_state(root)
    if info is not None and info.pid == os.getpid():
        (root / STATE_FILE).unlink(missing_ok=True)


def read_state(root: Path) -> ServerInfo | None:
    """What ``server.json`` says, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
        return ServerInfo(
            host=str(data["host"]),
            port=int(data["port"]),
            pid=int(data["pid"]),
            url=str(data["url"]),
            token=str(data.get("token", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server(root: Path) -> ServerInfo:
    """The dev server running this project; a clear error when there is none."""
    path = root / STATE_FILE
    hint = "start it in another terminal with: qr dev"
    if not path.exists():
        raise QrError(f"qr dev is not running for {root}", hint)
    info = read_state(root)
    if info is None:
        raise QrError(f"cannot read {path}", f"{hint} (it rewrites the file)")
    if not _alive(info.pid):
        raise QrError(f"qr dev is not running for {root} (stale {STATE_FILE})", hint)
    return info


def server_url(root: Path) -> str:
    return running_server(root).url


def control_request(
    root: Path, method: str, path: str, *, timeout: float = 30.0, **kwargs: Any
) -> httpx.Response:
    """``METHOD /_qr/PATH`` on the running server, with its control token."""
    info = running_server(root)
    url = f"{info.url}/_qr/{path.lstrip('/')}"
    try:
        response = httpx.request(
            method, url, headers={TOKEN_HEADER: info.token}, timeout=timeout, **kwargs
        )
    except httpx.HTTPError as exc:
        raise QrError(
            f"cannot reach qr dev at {info.url}: {exc}", "is the server still running?"
        ) from None
    if response.status_code == 403:
        raise QrError(
            f"qr dev at {info.url} refused the request: {_error(response)}",
            f"restart qr dev: {STATE_FILE} does not belong to the server on that port",
        )
    return response


def fire_schedule(root: Path, name: str, *, timeout: float = 930.0) -> dict[str, Any]:
    """Run schedule ``name`` on the running server now; returns its outcome."""
    response = control_request(root, "POST", f"schedules/{name}", timeout=timeout)
    if response.status_code == 404:
        raise QrError(_error(response), "run qr routes to list the project's schedules")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def job_action(root: Path, action: str, job_id: str) -> dict[str, Any]:
    """``qr jobs cancel|retry|replay|promote ID``: the dashboard's job buttons, on the running
    server (the same request the button sends)."""
    response = control_request(root, "POST", f"jobs/{job_id}/{action}")
    if response.status_code == 404:
        raise QrError(_error(response), "list the jobs with the dashboard (/_qr/jobs)")
    if response.status_code == 409:
        raise QrError(_error(response), "open the job in the dashboard to see its status")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def _error(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        return str(response.json().get("error"))
    return response.text[:200]


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
