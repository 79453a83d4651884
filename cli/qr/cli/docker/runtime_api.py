"""The Lambda Runtime API, served by qr to one container.

Lambda gives every execution environment its own Runtime API endpoint; so does qr: each warm
container gets a small HTTP/1.1 server on its own port (``AWS_LAMBDA_RUNTIME_API``), and the
server asks its ``RuntimeBackend`` (the pool's slot for that container) for work. Routes, as AWS
documents them for custom runtimes:

* ``GET  /2018-06-01/runtime/invocation/next`` - long poll; the event as the body, with the
  ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``, ``-Invoked-Function-Arn`` and
  ``-Trace-Id`` headers;
* ``POST /2018-06-01/runtime/invocation/{id}/response`` - the function's result (202);
* ``POST /2018-06-01/runtime/invocation/{id}/error`` - the function raised (202);
* ``POST /2018-06-01/runtime/init/error`` - importing the handler failed (202).

An unknown request id is a 400, a response over Lambda's 6 MB limit a 413, anything else a 404.
HTTP/1.1 keep-alive, so a warm container reuses one connection.

The server runs on an asyncio event loop: the dev server's own loop under ``qr dev --docker``,
so an invocation awaited by a request handler reaches the waiting ``next`` through an asyncio
future and its result comes back the same way, with no hand-off between threads (each hand-off
waited for the other thread to be scheduled: two per request). The socket is bound when the
server is made, so its port is known and a container may connect before the loop accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from qr.cli.docker._http import http_date

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
_MAX_HEADERS = 100
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Work:
    """One invocation as handed to the container."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str = ""


class RuntimeBackend(Protocol):
    """Called on the server's event loop."""

    def next_invocation(self) -> Awaitable[Work | None]:
        """Wait until there is work; ``None`` when the container is being stopped."""
        ...

    def respond(self, request_id: str, payload: bytes) -> bool:
        """The result of ``request_id``; ``False`` when that id is not running here."""
        ...

    def fail(self, request_id: str, error: bytes, error_type: str) -> bool: ...

    def init_failed(self, error: bytes, error_type: str) -> None: ...


class LoopThread:
    """An event loop of its own on a daemon thread, for callers without one (tests, tools)."""

    def __init__(self, name: str = "qr-docker-loop") -> None:
        self.loop = asyncio.new_event_loop()
        running = threading.Event()
        self.loop.call_soon(running.set)
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        running.wait(30)  # from here on, work for the loop goes through call_soon_threadsafe

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Bad(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RuntimeAPIServer:
    """One container's Runtime API endpoint, served on ``loop`` (a loop of its own if none)."""

    def __init__(
        self,
        backend: RuntimeBackend,
        host: str = "127.0.0.1",
        port: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.backend = backend
        self._own = LoopThread("RuntimeAPI") if loop is None else None
        self.loop: asyncio.AbstractEventLoop = loop or self._own.loop  # type: ignore[union-attr]
        self._socket = socket.create_server((host, port), backlog=16)
        self._socket.setblocking(False)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> RuntimeAPIServer:
        """Begin accepting on the loop (never waits: the socket already listens)."""
        self._call(self._begin)
        return self

    def close(self) -> None:
        """Stop accepting and drop the connections (a waiting ``next`` is woken by its slot).

        From another thread, waits (bounded) until the connections are closed."""
        self._closed = True
        loop = self.loop
        if loop.is_closed() or not loop.is_running():
            self._end()
        elif _running_loop() is loop:
            loop.create_task(self._aclose())
        else:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=5)
        if self._own is not None:
            self._own.close()

    def closed(self) -> bool:
        return self._closed

    def _call(self, action: Any) -> None:
        loop = self.loop
        if loop.is_closed() or not loop.is_running() or _running_loop() is loop:
            action()
        else:
            loop.call_soon_threadsafe(action)

    def _begin(self) -> None:
        if self._closed:
            return
        task = self.loop.create_task(
            asyncio.start_server(self._serve, sock=self._socket, limit=2**16 + 2)
        )
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[asyncio.Server]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self._server = task.result()
        if self._closed:
            self._end()

    async def _aclose(self) -> None:
        self._end()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def _end(self) -> None:
        # (after the loop was closed, closing its transports fails: they are gone anyway)
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.close()
        with contextlib.suppress(OSError):
            self._socket.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not self.closed():
                try:
                    request = await _read_request(reader)
                except _Bad as bad:
                    _write(writer, bad.status, {"errorMessage": str(bad)}, close=True)
                    return
                if request is None:
                    return
                method, path, version, headers, body = request
                connection = headers.get("connection", "").lower()
                close = connection == "close" or (
                    version == "HTTP/1.0" and connection != "keep-alive"
                )
                status, payload, extra = await self._route(method, path, headers, body)
                if self.closed():
                    return
                _write(writer, status, payload, extra, close=close)
                if close:
                    return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str] | None]:
        backend = self.backend
        if method == "GET":
            if path != f"{PREFIX}/invocation/next":
                return 404, {"errorMessage": f"unknown path {path}"}, None
            work = await backend.next_invocation()
            if work is None:
                return 503, {"errorMessage": "the container is being stopped"}, None
            return (
                200,
                work.payload,
                {
                    "Lambda-Runtime-Aws-Request-Id": work.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(work.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": work.function_arn,
                    "Lambda-Runtime-Trace-Id": work.trace_id,
                },
            )
        if method != "POST":
            return 404, {"errorMessage": f"unknown path {path}"}, None
        error_type = headers.get(ERROR_TYPE_HEADER.lower()) or "Unknown"
        if path == f"{PREFIX}/init/error":
            backend.init_failed(body, error_type)
            return 202, {"status": "OK"}, None
        match = _INVOCATION.match(path)
        if match is None:
            return 404, {"errorMessage": f"unknown path {path}"}, None
        request_id, what = match.groups()
        if what == "response" and len(body) > MAX_RESPONSE_BYTES:
            message = f"response of {len(body)} bytes is over the {MAX_RESPONSE_BYTES} byte limit"
            backend.fail(
                request_id,
                json.dumps({"errorMessage": message, "errorType": "ResponseSizeTooLarge"}).encode(),
                "ResponseSizeTooLarge",
            )
            return 413, {"errorMessage": message, "errorType": "RequestEntityTooLarge"}, None
        if what == "response":
            known = backend.respond(request_id, body)
        else:
            known = backend.fail(request_id, body, error_type)
        if not known:
            return 400, {"errorMessage": f"invalid request id {request_id}"}, None
        return 202, {"status": "OK"}, None


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, str, dict[str, str], bytes] | None:
    """One request (``None`` when the client closed the connection between requests).

    The head is read in one call and split here: a ``readline`` per field cost a coroutine
    round each, twice per warm invocation."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as short:
        if not short.partial.strip():
            return None
        raw = short.partial
    except asyncio.LimitOverrunError:
        raise _Bad(431, "request head too large") from None
    lines = str(raw, "latin-1").split("\r\n")
    line = lines[0]
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Bad(400, f"bad request line {line!r}")
    method, path, version = parts
    if len(lines) > _MAX_HEADERS + 3:
        raise _Bad(431, "too many header fields")
    fields: dict[str, str] = {}
    for text in lines[1:]:
        if not text:
            break
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise _Bad(400, f"bad header line {text!r}")
        fields[name.lower()] = value.strip()
    try:
        length = int(fields.get("content-length") or 0)
    except ValueError:
        raise _Bad(400, "bad Content-Length") from None
    body = await reader.readexactly(length) if length > 0 else b""
    return method, path, version, fields, body


def _write(
    writer: asyncio.StreamWriter,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> None:
    """The whole reply in one write (status line, ``Date``, fields, body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", f"Date: {http_date()}"]
    if not headers or "Content-Type" not in headers:
        head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(data)}")
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if close:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
