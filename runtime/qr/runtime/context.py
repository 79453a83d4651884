"""What is running right now: the request, job, socket message or schedule run.

Set by each dispatcher (HTTP, queue, socket, schedule) for the duration of one handler call, so
that ``socket.send()`` knows the current user or connection, ``queues[...].push()`` carries the
pushing user's id, and every log line has the request or job id. A ``ContextVar``, so concurrent
requests and jobs (async tasks, worker threads via ``contextvars.copy_context``) never mix.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class Invocation:
    """One handler call. Treat it as immutable (``update_user`` makes a new one); it is not a frozen
    dataclass because one is made per request and a frozen one costs three times as much."""

    kind: Literal["http", "job", "socket", "schedule"]
    request_id: str
    """The request id (HTTP), job id (queue/schedule) or message id (socket)."""
    user: Mapping[str, Any] | None = None
    connection_id: str | None = None
    deadline: float | None = None
    """``time.monotonic()`` by which the handler must finish."""
    handler: str = ""
    """The handler file, for logs."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        if self.user is None:
            return None
        value = self.user.get("id")
        return None if value is None else str(value)


_current: ContextVar[Invocation | None] = ContextVar("qr_invocation", default=None)


def current() -> Invocation | None:
    return _current.get()


class invocation:
    """Make ``value`` the current invocation inside a ``with`` block.

    A class rather than a ``@contextmanager`` generator: it runs once per request and job.
    """

    __slots__ = ("_token", "value")

    def __init__(self, value: Invocation) -> None:
        self.value = value

    def __enter__(self) -> Invocation:
        self._token = _current.set(self.value)
        return self.value

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def update_user(user: Mapping[str, Any] | None) -> None:
    """Record the user once authentication has run (same invocation otherwise)."""
    now = _current.get()
    if now is not None:
        _current.set(
            Invocation(
                now.kind,
                now.request_id,
                user,
                now.connection_id,
                now.deadline,
                now.handler,
                now.extra,
            )
        )
