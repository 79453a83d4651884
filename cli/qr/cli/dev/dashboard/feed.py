"""The dashboard's live feed: console lines and requests as they happen, bounded.

Producers call ``publish`` from any thread (``DevLog`` publishes every console and access line
from its flusher thread, in batches, and flushes before each read through ``before_read``, so a
reader never misses what was logged before it asked); ``publish`` appends one tuple to a ring buffer of ``SIZE`` events and never blocks or waits for a
reader, so a slow or stalled browser cannot slow the server. Readers (the server-sent events
stream, ``qr.cli.dev.dashboard.pages``) poll the ring every ``TICK`` seconds and send what is
new since their last sequence number in one frame; when a reader fell more than ``SIZE``
events behind, the events it missed are counted as dropped and the count is sent along.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from qr.runtime import context
from qr.runtime.local.connections import LocalRegistry, LocalSockets

SIZE = 2000
"""Entries kept (the Logs page's history, and how far a reader may fall behind)."""
TICK = 0.25
"""Seconds between two frames of one reader."""

Event = dict[str, Any]
ConsoleLine = tuple[float, str, str, str, bool]
"""``(time, kind, style, message, failed)``: a console line as ``DevLog`` batches it."""
AccessLine = tuple[float, str, str, int, float, str, str | None]
"""``(time, method, path, status, duration_ms, request_id, user_id)``: one request's access line."""
Entry = Event | ConsoleLine | AccessLine | str
"""What the ring holds: an event, or a line of ``DevLog`` as it was batched (``str``: printed
text, which is no event)."""


class Feed:
    """The ring. ``DevLog``'s lines are kept as the tuples it batched and turned into events only
    when read (most never are: a dashboard tab is not always open). Each entry has one sequence
    number; an access line becomes two events (its console line and the request) that share it,
    and ``dropped`` counts entries."""

    def __init__(self, size: int = SIZE, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._entries: deque[tuple[int, Entry]] = deque(maxlen=size)
        self._last = 0
        self._lock = threading.Lock()
        self.readers = 0
        self.before_read: Callable[[], None] | None = None
        """Called before each read (``DevLog.flush``: producers that batch publish now)."""
        self.closed = False
        """Set at shutdown: readers end their streams (uvicorn waits for open responses)."""

    def publish(self, kind: str, **fields: Any) -> None:
        """Append one event, stamped now."""
        fields["kind"] = kind
        fields["time"] = self.clock()
        with self._lock:  # sequence numbers and ring order agree
            self._last += 1
            fields["seq"] = self._last
            self._entries.append((self._last, fields))

    def publish_lines(self, lines: list[str | ConsoleLine | AccessLine]) -> None:
        """Append a batch of ``DevLog`` lines as they are (numbered and stored in C: no Python
        loop per line on the way in)."""
        with self._lock:
            first = self._last + 1
            self._last += len(lines)
            self._entries.extend(zip(range(first, self._last + 1), lines, strict=True))

    @property
    def last(self) -> int:
        if self.before_read is not None:
            self.before_read()
        with self._lock:
            return self._last

    def since(self, seq: int, limit: int | None = None) -> tuple[list[Event], int, int]:
        """Events after ``seq`` (at most ``limit``, the newest), how many entries were missed
        (dropped from the ring before this reader saw them, or beyond ``limit``), and the new
        position."""
        if self.before_read is not None:
            self.before_read()
        with self._lock:
            entries = list(self._entries)
        if not entries:
            return [], 0, seq
        dropped = max(0, entries[0][0] - seq - 1)
        fresh = [(number, payload) for number, payload in entries if number > seq]
        if limit is not None and len(fresh) > limit:
            dropped += len(fresh) - limit
            fresh = fresh[-limit:]
        events: list[Event] = []
        for number, payload in fresh:
            _expand(number, payload, events)
        return events, dropped, max(seq, entries[-1][0])


def _expand(number: int, payload: Entry, into: list[Event]) -> None:
    if isinstance(payload, dict):
        into.append(payload)
    elif isinstance(payload, str):  # printed text: not an event
        return
    elif len(payload) == 5:
        at, source, _, message, failed = payload
        level = "error" if failed else "warning" if source == "WARN" else "info"
        into.append(
            {
                "kind": "log",
                "time": at,
                "seq": number,
                "source": source,
                "level": level,
                "message": message,
            }
        )
    else:
        at, method, path, status, duration_ms, request_id, user_id = payload
        message = f"{method} {path} {status} {duration_ms:.1f}ms {request_id}"
        into.append(
            {
                "kind": "log",
                "time": at,
                "seq": number,
                "source": "HTTP",
                "level": "error" if status >= 500 else "info",
                "message": message,
            }
        )
        into.append(
            {
                "kind": "request",
                "time": at,
                "seq": number,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 1),
                "request_id": request_id,
                "user": user_id,
            }
        )


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
