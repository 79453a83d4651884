"""In-process WebSocket connections: the local ``ConnectionRegistry`` and ``SocketPort``.

``LocalRegistry`` is presence in two dicts (connection -> user, user -> connections) behind a lock,
because handlers run on the event loop and in worker threads alike.

``LocalSockets`` gives each open connection an outbox (an ``asyncio.Queue`` owned by the loop that
serves the connection). ``send`` and ``close`` never block and may be called from any thread: on
the connection's own loop they enqueue directly, from elsewhere through
``loop.call_soon_threadsafe``. The connection's writer task (``qr.runtime.local.websocket``) drains
the outbox in order, so messages reach the client in the order they were sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Close:
    """Put in an outbox to close the connection after what was sent before."""

    code: int = 1000
    reason: str = ""


Outgoing = str | bytes | Close


class LocalRegistry:
    """Which connections are open and whose they are."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._user_of: dict[str, str | None] = {}
        self._by_user: dict[str, dict[str, None]] = {}

    def connect(self, connection_id: str) -> None:
        with self._lock:
            self._user_of.setdefault(connection_id, None)

    def bind_user(self, connection_id: str, user_id: str) -> bool:
        with self._lock:
            previous = self._user_of.get(connection_id)
            if previous is not None and previous != user_id:
                self._forget(connection_id, previous)
            self._user_of[connection_id] = user_id
            connections = self._by_user.setdefault(user_id, {})
            came_online = not connections
            connections[connection_id] = None
            return came_online

    def disconnect(self, connection_id: str) -> tuple[str | None, bool]:
        with self._lock:
            user_id = self._user_of.pop(connection_id, None)
            if user_id is None:
                return None, False
            return user_id, self._forget(connection_id, user_id)

    def user_of(self, connection_id: str) -> str | None:
        with self._lock:
            return self._user_of.get(connection_id)

    def connections(self, user_id: str) -> Sequence[str]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def is_online(self, user_id: str) -> bool:
        with self._lock:
            return bool(self._by_user.get(user_id))

    def all(self) -> list[str]:
        """Every open connection."""
        with self._lock:
            return list(self._user_of)

    def _forget(self, connection_id: str, user_id: str) -> bool:
        """Drop one of the user's connections; ``True`` when it was the last one."""
        connections = self._by_user.get(user_id, {})
        connections.pop(connection_id, None)
        if connections:
            return False
        self._by_user.pop(user_id, None)
        return True


class _Outbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue()

    def put(self, item: Outgoing) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(item)
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class LocalSockets:
    """Delivers messages to connections served by this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outboxes: dict[str, _Outbox] = {}

    def attach(self, connection_id: str) -> asyncio.Queue[Outgoing]:
        """Open an outbox for a connection served on the running loop; returns it to drain."""
        outbox = _Outbox(asyncio.get_running_loop())
        with self._lock:
            self._outboxes[connection_id] = outbox
        return outbox.queue

    def detach(self, connection_id: str) -> None:
        with self._lock:
            self._outboxes.pop(connection_id, None)

    def send(self, connection_id: str, data: str | bytes) -> bool:
        with self._lock:
            outbox = self._outboxes.get(connection_id)
        if outbox is None:
            return False
        try:
            outbox.put(data)
        except RuntimeError:  # the loop serving it has closed
            self.detach(connection_id)
            return False
        return True

    def close(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        with self._lock:
            outbox = self._outboxes.get(connection_id)
        if outbox is not None:
            try:
                outbox.put(Close(code, reason))
            except RuntimeError:
                self.detach(connection_id)

    def close_all(self, code: int = 1000, reason: str = "") -> int:
        """Close every connection (shutdown: 1001 going away); returns how many."""
        with self._lock:
            ids = list(self._outboxes)
        for connection_id in ids:
            self.close(connection_id, code, reason)
        return len(ids)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._outboxes)
