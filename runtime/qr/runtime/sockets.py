"""WebSocket: the ``socket`` object handlers call, and message dispatch.

Two halves, both platform-neutral (they reach connections only through ``qr.runtime.ports``):

* ``socket`` - what user code calls from any handler or job: ``socket.send(data)`` goes to the
  current user's connections (or, before authentication, the current connection);
  ``socket.to(user_ids).send(data)``, ``socket.close()``, ``socket.is_online(user_id)``.
* ``SocketDispatch`` - what a platform calls for each connection event. The local platform drives
  it from an ASGI WebSocket (``qr.runtime.local.connections``); the Lambda platform from API
  Gateway's ``$connect`` / ``$default`` / ``$disconnect`` events. The three calls are:

  1. ``connect(connection_id, request)`` - runs ``on_connect``; an ``HTTPError`` (raised by the
     hook, or 500 for a crash, 404 without ``socket/``) propagates: the platform refuses the
     upgrade with that status. Accepted connections are added to the registry.
  2. ``receive(connection_id, data)`` - one message: size check (API Gateway's 128 KB), parse
     (JSON when it parses, else text; bytes stay bytes), ``authenticate`` until it returns a user
     (binding the user, ``on_online`` when the user came online; the authenticating message is
     consumed; what ``authenticate`` sends with ``socket.send`` is delivered after the user is
     bound, so a client that waits for that acknowledgement is reachable through its user), then ``socket/<action>.py`` for ``{"action": ...}`` JSON or ``socket/index.py``.
     A handler's non-``None`` return value is sent back to the connection. Failures never
     propagate: the client gets ``{"error": ..., "request_id": ...}`` (and, for a failed
     authentication, the connection is closed with ``4000 + status``).
  3. ``disconnect(connection_id)`` - ``on_disconnect``, then ``on_offline`` when it was the user's
     last connection.

The registry stores only user ids (so it can live in DynamoDB); the full user dict returned by
``authenticate`` is cached per dispatcher and handlers get ``{"id": user_id}`` when the cache
does not have it (another Lambda container authenticated the connection).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from qr.runtime import _loader, context
from qr.runtime.errors import HTTPError
from qr.runtime.http.injection import call_with
from qr.runtime.manifest import Manifest, SocketHandler
from qr.runtime.ports import get_platform

MAX_MESSAGE_BYTES = 128 * 1024
"""API Gateway's WebSocket message payload limit (frames are limited to 32 KB)."""
MAX_FRAME_BYTES = 32 * 1024
_HELD = "held_messages"
"""``Invocation.extra`` key: messages ``authenticate`` sent, delivered after it returns."""
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009

Payload = str | bytes
logger = logging.getLogger("qr.socket")


class SocketError(RuntimeError):
    """``socket.send`` cannot work here (no current user/connection, a payload over the limit)."""


def encode(data: object) -> Payload:
    """What goes on the wire: bytes and str as they are, anything else as JSON text."""
    if isinstance(data, bytes | str):
        payload: Payload = data
    else:
        payload = json.dumps(data, default=_json_default, separators=(",", ":"))
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode())
    if size > MAX_MESSAGE_BYTES:
        raise SocketError(
            f"WebSocket message of {size} bytes is over API Gateway's limit of {MAX_MESSAGE_BYTES} "
            "bytes; send a smaller message (e.g. an id the client fetches over HTTP)"
        )
    return payload


def _json_default(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def decode(data: Payload) -> object:
    """A received message: bytes stay bytes; text is JSON when it parses, else the string."""
    if isinstance(data, bytes):
        return data
    try:
        return json.loads(data)
    except ValueError:
        return data


class SocketTarget:
    """The connections of some users: ``socket.to(ids)``."""

    def __init__(self, user_ids: tuple[str, ...]) -> None:
        self.user_ids = user_ids

    def connections(self) -> list[str]:
        registry = get_platform("socket.to()").connections
        return [c for user in self.user_ids for c in registry.connections(user)]

    def send(self, data: object) -> int:
        """Send to every connection of these users; returns how many received it."""
        return _deliver(self.connections(), encode(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        port = get_platform("socket.to().close()").sockets
        for connection_id in self.connections():
            port.close(connection_id, code, reason)


class Socket:
    """``from qr.runtime import socket``."""

    def send(self, data: object) -> int:
        """Send to the current user's connections, or the current connection before auth."""
        payload = encode(data)
        now = context.current()
        held = now.extra.get(_HELD) if now is not None else None
        if isinstance(held, list):  # inside authenticate: delivered once the user is bound
            held.append(payload)
            return 1
        return _deliver(self._current_connections("socket.send()"), payload)

    def to(self, user_ids: str | int | Iterable[str | int]) -> SocketTarget:
        if isinstance(user_ids, str | int):
            return SocketTarget((str(user_ids),))
        return SocketTarget(tuple(str(u) for u in user_ids))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the current connection (or, outside a socket message, the user's connections)."""
        port = get_platform("socket.close()").sockets
        now = context.current()
        if now is not None and now.connection_id is not None:
            port.close(now.connection_id, code, reason)
            return
        for connection_id in self._current_connections("socket.close()"):
            port.close(connection_id, code, reason)

    def is_online(self, user_id: str | int) -> bool:
        return get_platform("socket.is_online()").connections.is_online(str(user_id))

    def _current_connections(self, what: str) -> list[str]:
        platform = get_platform(what)
        now = context.current()
        if now is not None and now.user_id is not None:
            return list(platform.connections.connections(now.user_id))
        if now is not None and now.connection_id is not None:
            return [now.connection_id]
        raise SocketError(
            f"{what} has no current user or connection to send to (called outside an "
            "authenticated request, job or socket message); use socket.to(user_id).send(data)"
        )

    def __repr__(self) -> str:
        return "<qr.runtime.socket>"


socket = Socket()


def _deliver(connection_ids: Iterable[str], payload: Payload) -> int:
    port = get_platform("socket.send()").sockets
    return sum(1 for connection_id in connection_ids if port.send(connection_id, payload))


@dataclass(frozen=True)
class SocketEvent:
    """One thing that happened on a connection, for the platform's log."""

    kind: Literal["connect", "refuse", "authenticate", "message", "disconnect"]
    connection_id: str
    request_id: str
    duration: float
    user_id: str | None = None
    action: str | None = None
    file: str = ""
    error: str | None = None


Observer = Callable[[SocketEvent], None]


class SocketDispatch:
    """Runs the project's socket hooks and handlers for one platform's connection events."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.manifest = manifest
        self.observer = observer
        self.clock = clock
        self._users: dict[str, Mapping[str, Any]] = {}

    # -- the three events ----------------------------------------------------------------

    async def connect(self, connection_id: str, request: object = None) -> None:
        """Accept (return) or refuse (raise ``HTTPError``) a new connection."""
        started, request_id = self.clock(), _new_id()
        socket_spec = self.manifest.socket
        if socket_spec is None:
            self._emit("refuse", connection_id, request_id, started, error="404 no socket/")
            raise HTTPError(404, "this project has no socket/ handlers")
        hook = self._hook("on_connect")
        if hook is not None:
            function, file = hook
            values = {"request": request, "connection_id": connection_id, "request_id": request_id}
            invocation = context.Invocation(
                "socket", request_id, None, connection_id, None, file, {"event": "connect"}
            )
            try:
                with context.invocation(invocation):
                    await call_with(function, values)
            except HTTPError as exc:
                self._emit("refuse", connection_id, request_id, started, file=file, error=str(exc))
                raise
            except Exception as exc:
                self._log_crash(file, request_id, exc)
                self._emit(
                    "refuse", connection_id, request_id, started, file=file, error=_short(exc)
                )
                raise HTTPError(500, f"on_connect failed (request id {request_id})") from exc
        get_platform("a WebSocket connection").connections.connect(connection_id)
        self._emit("connect", connection_id, request_id, started)

    async def receive(self, connection_id: str, data: Payload, request: object = None) -> None:
        """Handle one message; errors go back to the client, never up to the platform."""
        started, request_id = self.clock(), _new_id()
        platform = get_platform("a WebSocket message")
        size = len(data) if isinstance(data, bytes) else len(data.encode())
        if size > MAX_MESSAGE_BYTES:
            error = f"message of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
            self._reply(connection_id, {"error": error, "request_id": request_id})
            self._emit("message", connection_id, request_id, started, error=error)
            return
        value = decode(data)
        user_id = platform.connections.user_of(connection_id)
        user = self._user(connection_id, user_id)
        if user is None and self._hook("authenticate") is not None:
            if await self._authenticate(connection_id, value, request, request_id, started):
                return
            user_id = platform.connections.user_of(connection_id)
            user = self._user(connection_id, user_id)
        action = value.get("action") if isinstance(value, dict) else None
        handler = self._handler(action if isinstance(action, str) else None)
        if handler is None:
            error = "no socket/index.py handles messages"
            self._reply(connection_id, {"error": error, "request_id": request_id})
            self._emit("message", connection_id, request_id, started, user_id, error=error)
            return
        values = {
            "data": value,
            "connection_id": connection_id,
            "user": user,
            "request_id": request_id,
            "action": action if handler.action != "$default" else None,
        }
        failure = await self._run_handler(handler, values, user, connection_id, request_id)
        self._emit(
            "message",
            connection_id,
            request_id,
            started,
            user_id,
            action=handler.action,
            file=handler.file,
            error=failure,
        )

    async def disconnect(self, connection_id: str) -> None:
        started, request_id = self.clock(), _new_id()
        platform = get_platform("a WebSocket disconnect")
        user_id, went_offline = platform.connections.disconnect(connection_id)
        user = self._user(connection_id, user_id)
        self._users.pop(connection_id, None)
        error = await self._run_hook(
            "on_disconnect",
            {"connection_id": connection_id, "user": user, "request_id": request_id},
            user,
            connection_id,
            request_id,
        )
        if went_offline and user is not None:
            error = (
                await self._run_hook(
                    "on_offline",
                    {"user": user, "connection_id": connection_id, "request_id": request_id},
                    user,
                    None,
                    request_id,
                )
                or error
            )
        self._emit("disconnect", connection_id, request_id, started, user_id, error=error)

    # -- steps ---------------------------------------------------------------------------

    async def _authenticate(
        self,
        connection_id: str,
        value: object,
        request: object,
        request_id: str,
        started: float,
    ) -> bool:
        """Run ``authenticate``; ``True`` when the message was consumed by it."""
        hook = self._hook("authenticate")
        assert hook is not None
        function, file = hook
        values = {
            "data": value,
            "connection_id": connection_id,
            "request": request,
            "request_id": request_id,
        }
        held: list[Payload] = []
        invocation = context.Invocation(
            "socket",
            request_id,
            None,
            connection_id,
            None,
            file,
            {"event": "authenticate", _HELD: held},
        )
        platform = get_platform("WebSocket authentication")
        try:
            with context.invocation(invocation):
                user = await call_with(function, values)
        except HTTPError as exc:
            self._release(connection_id, held)
            self._reply(connection_id, {"error": exc.detail, "status": exc.status})
            platform.sockets.close(connection_id, 4000 + exc.status, str(exc.detail)[:120])
            self._emit(
                "authenticate", connection_id, request_id, started, file=file, error=str(exc)
            )
            return True
        except Exception as exc:
            self._log_crash(file, request_id, exc)
            self._release(connection_id, held)
            self._reply(connection_id, _crash_body(request_id))
            self._emit(
                "authenticate", connection_id, request_id, started, file=file, error=_short(exc)
            )
            return True
        if user is None:
            self._release(connection_id, held)
            return False
        if not isinstance(user, Mapping) or user.get("id") is None:
            self._release(connection_id, held)
            error = (
                f"authenticate() in {file} must return a dict with an 'id' or None, got {user!r}"
            )
            logger.error(error)
            self._reply(connection_id, _crash_body(request_id))
            self._emit("authenticate", connection_id, request_id, started, file=file, error=error)
            return True
        user_id = str(user["id"])
        self._users[connection_id] = user
        came_online = platform.connections.bind_user(connection_id, user_id)
        self._release(connection_id, held)
        failure = None
        if came_online:
            failure = await self._run_hook(
                "on_online",
                {"user": user, "connection_id": connection_id, "request_id": request_id},
                user,
                connection_id,
                request_id,
            )
        self._emit(
            "authenticate", connection_id, request_id, started, user_id, file=file, error=failure
        )
        return True

    async def _run_handler(
        self,
        handler: SocketHandler,
        values: Mapping[str, object],
        user: Mapping[str, Any] | None,
        connection_id: str,
        request_id: str,
    ) -> str | None:
        function = sys.modules[handler.module].handler
        timeout = handler.config.timeout
        invocation = context.Invocation(
            "socket",
            request_id,
            user,
            connection_id,
            time.monotonic() + timeout,
            handler.file,
            {"action": handler.action},
        )
        try:
            with context.invocation(invocation):
                result = await call_with(function, values, timeout=timeout)
                if result is not None:
                    self._reply(connection_id, result)
        except HTTPError as exc:
            self._reply(connection_id, {"error": exc.detail, "status": exc.status})
            return str(exc)
        except TimeoutError:
            error = f"timed out after {timeout:g}s"
            self._reply(connection_id, {"error": error, "request_id": request_id})
            return error
        except Exception as exc:
            self._log_crash(handler.file, request_id, exc)
            self._reply(connection_id, _crash_body(request_id))
            return _short(exc)
        return None

    async def _run_hook(
        self,
        name: str,
        values: Mapping[str, object],
        user: Mapping[str, Any] | None,
        connection_id: str | None,
        request_id: str,
    ) -> str | None:
        """A presence/disconnect hook: errors are logged, never sent (the client may be gone)."""
        hook = self._hook(name)
        if hook is None:
            return None
        function, file = hook
        invocation = context.Invocation(
            "socket", request_id, user, connection_id, None, file, {"event": name}
        )
        try:
            with context.invocation(invocation):
                await call_with(function, values)
        except Exception as exc:
            self._log_crash(file, request_id, exc)
            return _short(exc)
        return None

    # -- helpers -------------------------------------------------------------------------

    def _hook(self, name: str) -> tuple[Callable[..., Any], str] | None:
        spec = self.manifest.socket
        file = spec.middleware.get(name) if spec else None
        if file is None:
            return None
        module = sys.modules.get(_loader.module_name(self.manifest.root, file))
        function = getattr(module, name, None)
        return (function, file) if callable(function) else None

    def _handler(self, action: str | None) -> SocketHandler | None:
        spec = self.manifest.socket
        return spec.handler(action) if spec else None

    def _user(self, connection_id: str, user_id: str | None) -> Mapping[str, Any] | None:
        if user_id is None:
            return None
        cached = self._users.get(connection_id)
        return cached if cached is not None else {"id": user_id}

    def _release(self, connection_id: str, held: list[Payload]) -> None:
        port = get_platform("a WebSocket reply").sockets
        for payload in held:
            port.send(connection_id, payload)
        held.clear()

    def _reply(self, connection_id: str, data: object) -> None:
        try:
            payload = encode(data)
        except (SocketError, TypeError) as exc:
            payload = encode({"error": f"reply could not be sent: {exc}"})
        get_platform("a WebSocket reply").sockets.send(connection_id, payload)

    def _log_crash(self, file: str, request_id: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        logger.error("%s failed (request %s):\n%s", file, request_id, text.rstrip())

    def _emit(
        self,
        kind: Literal["connect", "refuse", "authenticate", "message", "disconnect"],
        connection_id: str,
        request_id: str,
        started: float,
        user_id: str | None = None,
        *,
        action: str | None = None,
        file: str = "",
        error: str | None = None,
    ) -> None:
        if self.observer is None:
            return
        duration = self.clock() - started
        self.observer(
            SocketEvent(kind, connection_id, request_id, duration, user_id, action, file, error)
        )


def _new_id() -> str:
    return uuid.uuid4().hex


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _crash_body(request_id: str) -> dict[str, str]:
    return {"error": "internal error", "request_id": request_id}
