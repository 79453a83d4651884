"""The runtime's narrow ports to the outside world, and the platform that plugs adapters in.

Handlers never talk to SQLite, SQS, API Gateway or DynamoDB directly: they call
``queues[...].push``, ``socket.send`` ... which go through these ports. Each platform installs its
adapters once with ``set_platform``:

* the local platform (``qr dev``, ``qr.runtime.testing``): SQLite queue engine, in-process
  WebSocket connections (``qr.runtime.local``);
* the Lambda platform: SQS, the API Gateway management API, DynamoDB (``qr.runtime.aws``).

``JobStore`` keeps what can be followed about a job (``JobState``): its status, attempts, result,
last error and progress. Locally it lives in the queue engine's SQLite database and is written in
the same transactions as push/claim/ack; on AWS it is a DynamoDB table written with conditional
updates by the consumer (start and finish). The dashboard and ``qr jobs`` read it through this
port only.

Ports are synchronous on purpose: user code calls ``push()`` / ``send()`` from sync and async
handlers alike, and every adapter is quick (a local SQLite write, one AWS API call).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol


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
    debounce_key: str | None = None
    """``queues[q].debounce(key, seconds)``: this push replaces the key's pending job."""


JobStatus = Literal["queued", "delayed", "running", "succeeded", "failed", "dead", "cancelled"]
STATUSES: tuple[JobStatus, ...] = (
    "queued",
    "delayed",
    "running",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
)
FINAL_STATUSES = frozenset({"succeeded", "dead", "cancelled"})
"""A job in one of these never runs again (``failed`` means it will be retried)."""
DEFAULT_KEEP_RESULTS = 86_400
"""Seconds a finished job's state is kept (``config["keep_results"]``)."""


@dataclass(frozen=True)
class JobState:
    """What can be known about one job (``jobs.get(job_id)``). Times are epoch seconds."""

    job_id: str
    queue: str
    status: JobStatus
    attempts: int = 0
    """Receives so far (the current one included while running)."""
    result: Any = None
    """What the handler returned (JSON), once ``succeeded``."""
    error: dict[str, str] | None = None
    """The last error: ``type``, ``message`` (and ``traceback`` where the platform keeps it)."""
    progress: float | None = None
    """0..1, from ``job.progress()``."""
    progress_message: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    user: str | None = None
    """The pushing user's id."""
    cancel_requested: bool = False
    """``jobs.cancel()`` was called while the job ran; it sees ``job.cancelled``."""

    @property
    def done(self) -> bool:
        """It will never run again."""
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the status route, ``qr jobs --json``): times as ISO 8601 UTC strings."""
        return {
            "job_id": self.job_id,
            "queue": self.queue,
            "status": self.status,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "queued_at": _iso(self.queued_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "user": self.user,
            "cancel_requested": self.cancel_requested,
        }


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class JobStart:
    """A consumer is about to run a job (what the state's ``running`` record needs)."""

    job_id: str
    queue: str
    attempt: int
    queued_at: float
    user: str | None = None
    keep: float = DEFAULT_KEEP_RESULTS
    lease: float | None = None
    """Seconds after which this attempt cannot still be running (its deadline, plus a margin):
    past it, a ``running`` state that was never finished reads ``queued`` (the worker died)."""


class JobStore(Protocol):
    """Job state: read by ``jobs.get/cancel/wait``, ``qr jobs`` and the dashboard, written by the
    platform's consumer (``start``/``finish``) and by ``job.progress()``."""

    def get(self, job_id: str) -> JobState | None:
        """The job's state; ``None`` for an unknown id, or once its retention has passed."""
        ...

    def list(
        self, *, queue: str | None = None, status: str | None = None, limit: int = 50
    ) -> Sequence[JobState]:
        """The most recently queued jobs first."""
        ...

    def cancel(self, job_id: str) -> JobState | None:
        """A job that has not run yet never will; a running one is asked to stop. Returns the
        state after the call (``None``: unknown id); a finished job is left as it was."""
        ...

    def progress(self, job_id: str, value: float, message: str | None) -> bool:
        """Record a running job's progress; returns whether it was asked to cancel."""
        ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def start(self, job: JobStart) -> bool:
        """Record ``running`` for this attempt; ``False``: do not run it (cancelled, or already
        finished: a late duplicate delivery)."""
        ...

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        keep: float = DEFAULT_KEEP_RESULTS,
        result: Any = None,
        error: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> bool:
        """Record the attempt's outcome (``succeeded``, ``failed``, ``dead`` or ``cancelled``);
        ``False`` when the job had already finished (nothing is changed then)."""
        ...


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


@dataclass(eq=False)
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
    jobs: JobStore | None = None
    """Job state (``None``: this platform keeps none, ``jobs.get()`` says so)."""
    status_queues: frozenset[str] = frozenset()
    """Queues with ``config["status_route"]``: their ``queue.http`` answers with ``Location``."""


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


def current_platform() -> Platform | None:
    """The installed platform, or ``None`` (``get_platform`` raises instead)."""
    return _platform


def get_platform(what: str = "this") -> Platform:
    if _platform is None:
        raise NoPlatformError(what)
    return _platform
