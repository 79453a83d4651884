"""The Runtime API server's protocol, spoken by http.client against a recording backend."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from qr.cli.docker.runtime_api import MAX_RESPONSE_BYTES, PREFIX, RuntimeAPIServer, Work


class _Backend:
    def __init__(self) -> None:
        self.work: list[Work] = [Work("req-1", b'{"a": 1}', 1_900_000_000_000, "arn:fn")]
        self.results: list[tuple[str, str, bytes]] = []

    def next_invocation(self, deliver: Callable[[Work | None], bool]) -> None:
        deliver(self.work.pop(0) if self.work else None)

    def respond(self, request_id: str, payload: bytes) -> bool:
        self.results.append(("response", request_id, payload))
        return request_id == "req-1"

    def fail(self, request_id: str, error: bytes, error_type: str) -> bool:
        self.results.append((f"error:{error_type}", request_id, error))
        return request_id == "req-1"

    def init_failed(self, error: bytes, error_type: str) -> None:
        self.results.append((f"init:{error_type}", "", error))


@pytest.fixture
def backend() -> _Backend:
    return _Backend()


@pytest.fixture
def conn(backend: _Backend) -> Iterator[http.client.HTTPConnection]:
    server = RuntimeAPIServer(backend).start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    yield connection
    connection.close()
    server.close()


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_next_hands_out_the_event_with_lambda_headers(
    conn: http.client.HTTPConnection, backend: _Backend
) -> None:
    status, headers, body = _call(conn, "GET", f"{PREFIX}/invocation/next")
    assert status == 200
    assert json.loads(body) == {"a": 1}
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Deadline-Ms"] == "1900000000000"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == "arn:fn"
    # keep-alive: the same connection posts the result
    status, _, body = _call(conn, "POST", f"{PREFIX}/invocation/req-1/response", b'{"ok": true}')
    assert status == 202
    assert backend.results == [("response", "req-1", b'{"ok": true}')]


def test_error_and_init_error_carry_the_error_type(
    conn: http.client.HTTPConnection, backend: _Backend
) -> None:
    header = {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"}
    status, _, _ = _call(conn, "POST", f"{PREFIX}/init/error", b'{"errorMessage": "x"}', header)
    assert status == 202
    status, _, _ = _call(conn, "POST", f"{PREFIX}/invocation/req-1/error", b"{}", header)
    assert status == 202
    assert [kind for kind, _, _ in backend.results] == [
        "init:Runtime.ImportModuleError",
        "error:Runtime.ImportModuleError",
    ]


def test_unknown_request_id_and_path_are_rejected(conn: http.client.HTTPConnection) -> None:
    assert _call(conn, "POST", f"{PREFIX}/invocation/nope/response", b"{}")[0] == 400
    assert _call(conn, "GET", "/2018-06-01/runtime/invocation/other")[0] == 404


def test_oversized_response_is_413_and_fails_the_invocation(
    conn: http.client.HTTPConnection, backend: _Backend
) -> None:
    big = b"x" * (MAX_RESPONSE_BYTES + 1)
    status, _, _ = _call(conn, "POST", f"{PREFIX}/invocation/req-1/response", big)
    assert status == 413
    assert backend.results[0][0] == "error:ResponseSizeTooLarge"


def test_header_names_are_matched_without_regard_to_case(
    conn: http.client.HTTPConnection, backend: _Backend
) -> None:
    header = {"lambda-runtime-function-error-type": "Runtime.Lower"}
    assert _call(conn, "POST", f"{PREFIX}/invocation/req-1/error", b"{}", header)[0] == 202
    assert backend.results[0][0] == "error:Runtime.Lower"


def _raw(server: RuntimeAPIServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_head",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /2018-06-01/runtime/invocation/next SPDY/3\r\n\r\n",
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n folded: x\r\n\r\n",
    ],
)
def test_malformed_requests_are_400_and_the_connection_closed(
    backend: _Backend, request_head: bytes
) -> None:
    server = RuntimeAPIServer(backend).start()
    try:
        answer = _raw(server, request_head)  # returns: the server closed the connection
    finally:
        server.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert backend.work, "no work was handed out"


def test_connection_close_is_honoured(backend: _Backend) -> None:
    server = RuntimeAPIServer(backend).start()
    try:
        answer = _raw(
            server,
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
    finally:
        server.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nDate: " in head
    assert json.loads(body) == {"a": 1}


def test_served_on_the_given_event_loop_without_a_thread_hop() -> None:
    """Under ``qr dev --docker`` the Runtime API runs on the dev server's own loop: the backend
    is called on that loop's thread, so a handler awaiting an invocation and the container's
    ``next`` meet through an asyncio future."""
    threads: list[str] = []

    class Recording(_Backend):
        def next_invocation(self, deliver: Callable[[Work | None], bool]) -> None:
            threads.append(threading.current_thread().name)
            super().next_invocation(deliver)

        def respond(self, request_id: str, payload: bytes) -> bool:
            threads.append(threading.current_thread().name)
            return super().respond(request_id, payload)

    async def exchange() -> None:
        server = RuntimeAPIServer(Recording(), loop=asyncio.get_running_loop()).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {PREFIX}/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 200 ")
            await reader.readexactly(len(b'{"a": 1}'))
            path = f"{PREFIX}/invocation/req-1/response"
            writer.write(f"POST {path} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 202 ")
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()

    asyncio.run(exchange())
    assert threads == [threading.current_thread().name] * 2


class _Waiting(_Backend):
    """Keeps each ``next``'s ``deliver`` and each result for the test to act on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.deliver: Callable[[Work | None], bool] | None = None
        self.asked = asyncio.Event()
        self.result: asyncio.Future[bytes] = loop.create_future()

    def next_invocation(self, deliver: Callable[[Work | None], bool]) -> None:
        self.deliver = deliver
        self.asked.set()

    def respond(self, request_id: str, payload: bytes) -> bool:
        self.result.set_result(payload)
        return True


def _client(server: RuntimeAPIServer, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(request)
    return sock


def test_a_waiting_next_is_answered_in_the_turn_that_delivers_the_invocation() -> None:
    """The event reaches the container's socket during ``deliver`` itself: the loop does not
    have to come round to a task first (the test blocks the loop while it reads)."""

    async def exchange() -> bytes:
        backend = _Waiting(asyncio.get_running_loop())
        server = RuntimeAPIServer(backend, loop=asyncio.get_running_loop()).start()
        sock = _client(server, f"GET {PREFIX}/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            await asyncio.wait_for(backend.asked.wait(), 30)
            assert backend.deliver is not None
            assert backend.deliver(backend.work[0])
            return sock.recv(65536)  # blocking, on the loop's thread: no turn of the loop
        finally:
            sock.close()
            server.close()

    answer = asyncio.run(exchange())
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"Lambda-Runtime-Aws-Request-Id: req-1\r\n" in answer


def test_the_caller_gets_the_result_before_the_container_gets_its_202() -> None:
    """The caller of the invocation (the request waiting for it) runs first; the container's
    202, which it only needs to ask for its next event, follows in the same turn."""

    async def exchange() -> tuple[bytes, bytes]:
        backend = _Waiting(asyncio.get_running_loop())
        server = RuntimeAPIServer(backend, loop=asyncio.get_running_loop()).start()
        path = f"{PREFIX}/invocation/req-1/response"
        sock = _client(server, f"POST {path} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        try:
            async with asyncio.timeout(30):  # (``wait_for`` would resume us a turn later)
                payload = await backend.result
            sock.setblocking(False)
            try:
                early = sock.recv(65536)  # loopback: a written reply would be here already
            except BlockingIOError:
                early = b""
            sock.settimeout(10)
            await asyncio.sleep(0)
            return early, payload + b" " + sock.recv(65536)
        finally:
            sock.close()
            server.close()

    early, late = asyncio.run(exchange())
    assert early == b""
    assert late.startswith(b"{} HTTP/1.1 202 ")
