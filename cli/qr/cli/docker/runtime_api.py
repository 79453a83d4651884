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
with no hand-off between threads (each hand-off waited for the other thread to be scheduled:
two per request). Requests are handled in the connection's protocol callbacks: a waiting
``next`` is answered by the handler that submits an invocation, in its own turn of the loop,
and a posted result completes the caller's future as it is read. The 202 for a result is
written in the loop's next turn, after the caller (first in line) has answered its client: the
container needs it only to ask for its next event. The socket is bound when the server is made,
so its port is known and a container may connect before the loop accepts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from qr.cli.docker._http import http_date

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
_MAX_HEADERS = 100
_MAX_HEAD = 2**16
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

    def next_invocation(self, deliver: Callable[[Work | None], bool]) -> None:
        """A ``next`` came: call ``deliver`` with its invocation, now or when one comes
        (``None`` when the container is being stopped). ``deliver`` returns ``False`` when the
        connection is gone, and the invocation must go elsewhere."""
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
        self._connections: set[_Connection] = set()
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

        From another thread, waits (bounded) until that is done."""
        self._closed = True
        loop = self.loop
        if loop.is_closed() or not loop.is_running() or _running_loop() is loop:
            self._end()
        else:
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def end() -> None:
                try:
                    self._end()
                finally:
                    done.set_result(None)

            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(end)
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    done.result(timeout=5)
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
            self.loop.create_server(lambda: _Connection(self), sock=self._socket)
        )
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[asyncio.Server]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self._server = task.result()
        if self._closed:
            self._end()

    def _end(self) -> None:
        # (after the loop was closed, closing its transports fails: they are gone anyway)
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.close()
        with contextlib.suppress(OSError):
            self._socket.close()
        for connection in list(self._connections):
            connection.close()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection from the container, handled in the loop's callbacks.

    A request is parsed and answered in ``data_received`` itself, with no task or stream reader
    in between: a stream reader wakes a task in the next turn of the loop for every read, which
    put two turns more on each warm invocation's path. A ``next`` that has to wait registers
    ``deliver`` with the backend, which writes the answer the moment an invocation comes
    (from the handler that submits it, in the same turn). The client sends one request at a
    time (``awslambdaric``); anything it sends while its ``next`` waits is kept until then.
    """

    def __init__(self, server: RuntimeAPIServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting = False
        """A ``next`` of this connection waits for work."""
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.server.closed():
            self.close()
            return
        self.server._connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()

    def alive(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing() and not self.server.closed()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._process()

    def _process(self) -> None:
        while not self.waiting and self.alive():
            try:
                request = _parse(self.buffer)
            except _Bad as bad:
                self._write(bad.status, {"errorMessage": str(bad)}, close=True)
                return
            if request is None:
                return
            method, path, version, headers, body = request
            connection = headers.get("connection", "").lower()
            self.close_after = connection == "close" or (
                version == "HTTP/1.0" and connection != "keep-alive"
            )
            if method == "GET":
                if path != f"{PREFIX}/invocation/next":
                    self._write(404, {"errorMessage": f"unknown path {path}"})
                    continue
                self.waiting = True
                self.server.backend.next_invocation(self.deliver)
                continue
            if method != "POST":
                self._write(404, {"errorMessage": f"unknown path {path}"})
                continue
            status, payload, later = self._post(path, headers, body)
            if later:
                # The invocation's result is with its caller: let it answer its client
                # first (its task runs in the loop's next turn, before this); the
                # container only waits for this 202 to ask for its next event.
                self.server.loop.call_soon(self._write, status, payload)
            else:
                self._write(status, payload)

    def deliver(self, work: Work | None) -> bool:
        """Answer the waiting ``next`` with ``work`` (``None``: the container is being
        stopped); ``False`` when the connection is gone."""
        if not self.waiting or not self.alive():
            return False
        self.waiting = False
        if work is None:
            self._write(503, {"errorMessage": "the container is being stopped"})
        else:
            headers = {
                "Lambda-Runtime-Aws-Request-Id": work.request_id,
                "Lambda-Runtime-Deadline-Ms": str(work.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": work.function_arn,
                "Lambda-Runtime-Trace-Id": work.trace_id,
            }
            self._write(200, work.payload, headers)
        if self.buffer:
            self.server.loop.call_soon(self._process)
        return True

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bool]:
        """Status, body, and whether a result was handed over."""
        backend = self.server.backend
        error_type = headers.get(ERROR_TYPE_HEADER.lower()) or "Unknown"
        if path == f"{PREFIX}/init/error":
            backend.init_failed(body, error_type)
            return 202, {"status": "OK"}, False
        match = _INVOCATION.match(path)
        if match is None:
            return 404, {"errorMessage": f"unknown path {path}"}, False
        request_id, what = match.groups()
        if what == "response" and len(body) > MAX_RESPONSE_BYTES:
            message = f"response of {len(body)} bytes is over the {MAX_RESPONSE_BYTES} byte limit"
            backend.fail(
                request_id,
                json.dumps({"errorMessage": message, "errorType": "ResponseSizeTooLarge"}).encode(),
                "ResponseSizeTooLarge",
            )
            return 413, {"errorMessage": message, "errorType": "RequestEntityTooLarge"}, False
        if what == "response":
            known = backend.respond(request_id, body)
        else:
            known = backend.fail(request_id, body, error_type)
        if not known:
            return 400, {"errorMessage": f"invalid request id {request_id}"}, False
        return 202, {"status": "OK"}, True

    def _write(
        self, status: int, body: Any, headers: dict[str, str] | None = None, *, close: bool = False
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = close or self.close_after
        transport.write(_reply(status, body, headers, close=close))
        if close:
            transport.close()


def _parse(buffer: bytearray) -> tuple[str, str, str, dict[str, str], bytes] | None:
    """Take one whole request off the front of ``buffer`` (``None``: not all there yet)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise _Bad(431, "request head too large")
        return None
    lines = str(buffer[:end], "latin-1").split("\r\n")
    line = lines[0]
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Bad(400, f"bad request line {line!r}")
    method, path, version = parts
    if len(lines) > _MAX_HEADERS + 1:
        raise _Bad(431, "too many header fields")
    fields: dict[str, str] = {}
    for text in lines[1:]:
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise _Bad(400, f"bad header line {text!r}")
        fields[name.lower()] = value.strip()
    try:
        length = int(fields.get("content-length") or 0)
    except ValueError:
        raise _Bad(400, "bad Content-Length") from None
    if length < 0:
        raise _Bad(400, "bad Content-Length")
    start = end + 4
    if len(buffer) < start + length:
        return None
    body = bytes(buffer[start : start + length])
    del buffer[: start + length]
    return method, path, version, fields, body


def _reply(
    status: int, body: Any, headers: dict[str, str] | None = None, *, close: bool = False
) -> bytes:
    """The whole reply as one buffer (status line, ``Date``, fields, body): one write."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", f"Date: {http_date()}"]
    if not headers or "Content-Type" not in headers:
        head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(data)}")
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data
