"""The dashboard's live feed: console lines and requests as they happen, bounded.

Producers (``DevLog``: every console line, every access line) call ``publish`` from any thread;
it appends one tuple to a ring buffer of ``SIZE`` events and never blocks or waits for a
reader, so a slow or stalled browser cannot slow the server. Readers (the server-sent events
stream, ``qr.cli.dev.dashboard.pages``) poll the ring every ``TICK`` seconds and send what is
new since their last sequence number in one frame; when a reader fell more than ``SIZE``
events behind, the events it missed are counted as dropped and the count is sent along.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from qr.runtime import context
from qr.runtime.local.connections import LocalRegistry, LocalSockets

SIZE = 2000
"""Events kept (the Logs page's history, and how far a reader may fall behind)."""
TICK = 0.25
"""Seconds between two frames of one reader."""

Event = dict[str, Any]


class Feed:
    def __init__(self, size: int = SIZE, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._events: deque[tuple[int, Event]] = deque(maxlen=size)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.readers = 0
        self.closed = False
        """Set at shutdown: readers end their streams (uvicorn waits for open responses)."""

    def publish(self, kind: str, **fields: Any) -> None:
        fields["kind"] = kind
        fields["time"] = self.clock()
        with self._lock:  # sequence numbers and ring order agree
            number = next(self._numbers)
            fields["seq"] = number
            self._events.append((number, fields))

    @property
    def last(self) -> int:
        with self._lock:
            return self._events[-1][0] if self._events else 0

    def since(self, seq: int, limit: int | None = None) -> tuple[list[Event], int, int]:
        """Events after ``seq`` (at most ``limit``, the newest), how many were missed (dropped
        from the ring before this reader saw them, or beyond ``limit``), and the new position."""
        with self._lock:
            events = list(self._events)
        if not events:
            return [], 0, seq
        first, newest = events[0][0], events[-1][0]
        dropped = max(0, first - seq - 1)
        fresh = [event for number, event in events if number > seq]
        if limit is not None and len(fresh) > limit:
            dropped += len(fresh) - limit
            fresh = fresh[-limit:]
        return fresh, dropped, max(seq, newest)


class FeedSockets(LocalSockets):
    """``qr dev``'s socket port: delivers like ``LocalSockets`` and puts each message on the feed
    with the id of the request, job, socket message or schedule run that sent it (the dashboard's
    trace shows them). One append per message; the message itself is not kept, only its size."""

    def __init__(self, feed: Feed, registry: LocalRegistry) -> None:
        super().__init__()
        self.feed = feed
        self.registry = registry

    def send(self, connection_id: str, data: str | bytes) -> bool:
        delivered = super().send(connection_id, data)
        now = context.current()
        self.feed.publish(
            "socket",
            origin=None if now is None else now.request_id,
            connection=connection_id,
            user=self.registry.user_of(connection_id),
            size=len(data),
            delivered=delivered,
        )
        return delivered
