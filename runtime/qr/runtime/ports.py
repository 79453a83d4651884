"""The runtime's narrow ports to the outside world, and the platform that plugs adapters in.

Handlers never talk to SQLite, SQS, API Gateway or DynamoDB directly: they call
``queues[...].push``, ``socket.send`` ... which go through these ports. Each platform installs its
adapters once with ``set_platform``:

* the local platform (``qr dev``, ``qr.runtime.testing``): SQLite queue engine, in-process
  WebSocket connections (``qr.runtime.local``);
* the Lambda platform: SQS, the API Gateway management API, DynamoDB (``qr.runtime.aws``).

Ports are synchronous on purpose: user code calls ``push()`` / ``send()`` from sync and async
handlers alike, and every adapter is quick (a local SQLite write, one AWS API call).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingJob:
    """A job on its way to a queue, already encoded."""

    queue: str
    body: str
    """The encoded payload (JSON text, plain text, or base64 for bytes)."""
    content_type: str
    """``application/json``, ``text/plain; charset=utf-8`` or ``application/octet-stream``."""
    group_id: str | None = None
    dedupe_id: str | None = None
    delay: float = 0
    user_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class QueuePort(Protocol):
    def send(self, job: OutgoingJob) -> str:
        """Enqueue; returns the job id (the original job's id for a FIFO duplicate)."""
        ...


class SocketPort(Protocol):
    def send(self, connection_id: str, data: str | bytes) -> bool:
        """Deliver one message; ``False`` when the connection is gone (it is then forgotten)."""
        ...

    def close(self, connection_id: str, code: int = 1000, reason: str = "") -> None: ...


class ConnectionRegistry(Protocol):
    """Which connections are open and which user each belongs to (presence)."""

    def connect(self, connection_id: str) -> None: ...

    def bind_user(self, connection_id: str, user_id: str) -> bool:
        """Attach a user; ``True`` when this made the user come online."""
        ...

    def disconnect(self, connection_id: str) -> tuple[str | None, bool]:
        """Forget a connection; returns its user and whether that user went offline."""
        ...

    def user_of(self, connection_id: str) -> str | None: ...

    def connections(self, user_id: str) -> Sequence[str]: ...

    def is_online(self, user_id: str) -> bool: ...


@dataclass
class Platform:
    """The adapters of the platform the code runs on."""

    name: str
    """``local`` or ``lambda`` (for logs and error messages, never for branching in dispatch)."""
    queues: QueuePort
    sockets: SocketPort
    connections: ConnectionRegistry
    base_url: str = "http://localhost:8000"
    dev: bool = False
    """Development mode: tracebacks may be shown in 500 responses."""
    clock: Callable[[], float] = time.time
    queue_names: frozenset[str] | None = None
    """The project's queues (from the manifest): pushing elsewhere is an error. ``None``: unchecked."""


_platform: Platform | None = None


class NoPlatformError(RuntimeError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs a running platform: call it from a handler under `qr dev`, in a deployed "
            "function, or in tests through qr.runtime.testing.Client"
        )


def set_platform(platform: Platform | None) -> Platform | None:
    """Install the platform's adapters; returns the previous platform (to restore in tests)."""
    global _platform
    previous, _platform = _platform, platform
    return previous


def get_platform(what: str = "this") -> Platform:
    if _platform is None:
        raise NoPlatformError(what)
    return _platform
