"""The HTTP app behind a real uvicorn server on 127.0.0.1: what only a real socket shows.

Raw request lines (a literal ``..`` that HTTP clients would normalise away), a chunked upload that
is refused before it is all sent, HEAD over the wire, keep-alive across requests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from qr.runtime.http import create_app
from qr.runtime.manifest import scan
from tests.conftest import MakeProject
from tests.waiting import WAIT, until

pytestmark = pytest.mark.integration


@pytest.fixture
def server(make_project: MakeProject) -> Iterator[str]:
    root: Path = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/items/[id].py": "def get(id): return {'id': id}",
            "api/files/[...path].py": "def get(path): return {'path': path}",
            "api/upload.py": "def post(body): return {'size': len(body)}",
        }
    )
    app = create_app(scan(root), body_limit=1024 * 1024)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert server.started, "uvicorn stopped before it started (see the captured log)"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)


def _raw(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_json_get_and_head_over_the_wire(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        response = client.get("/items/7")
        assert response.json() == {"id": "7"}
        head = client.head("/items/7")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == response.headers["content-length"]


def test_encoded_slash_and_unicode_over_the_wire(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        assert client.get("/items/a%2Fb").json() == {"id": "a/b"}
        assert client.get("/items/%E6%97%A5").json() == {"id": "日"}


def test_literal_dot_dot_in_the_request_line_is_400(server: str) -> None:
    reply = _raw(
        server, b"GET /files/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"not allowed" in reply


def test_chunked_upload_over_the_limit_is_413(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(32):
            yield b"z" * 65536  # 2 MB in all; the limit is 1 MB

    with httpx.Client(base_url=server) as client:
        try:
            response = client.post(
                "/upload", content=chunks(), headers={"content-type": "application/octet-stream"}
            )
        except httpx.TransportError:
            pytest.fail("the server should answer 413, not drop the connection mid-upload")
        assert response.status_code == 413
        ok = client.post("/upload", content=b"small", headers={"content-type": "text/plain"})
        assert ok.json() == {"size": 5}
