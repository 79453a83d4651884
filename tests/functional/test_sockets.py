"""WebSocket dispatch through the local endpoint, in-process (Starlette's test client)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from qr.runtime import context, ports
from qr.runtime.local.connections import LocalRegistry, LocalSockets
from qr.runtime.local.websocket import LocalSocketApp
from qr.runtime.manifest import scan
from qr.runtime.ports import OutgoingJob, Platform
from qr.runtime.sockets import (
    MAX_MESSAGE_BYTES,
    Observer,
    SocketDispatch,
    SocketError,
    SocketEvent,
    socket,
)
from tests.conftest import MakeProject

MIDDLEWARE = """
from qr.runtime import HTTPError, socket

EVENTS = []

def on_connect(request, connection_id):
    if request.query_params.get("deny"):
        raise HTTPError(403, "go away")
    EVENTS.append(("connect", connection_id))

def authenticate(data, connection_id):
    if not isinstance(data, dict) or "token" not in data:
        return None
    if data["token"] == "bad":
        raise HTTPError(401, "bad token")
    if data["token"] == "crash":
        raise RuntimeError("auth bug")
    socket.send({"welcome": data["token"]})
    return {"id": data["token"], "name": data["token"].title()}

def on_online(user):
    EVENTS.append(("online", user["id"]))

def on_offline(user):
    EVENTS.append(("offline", user["id"]))

def on_disconnect(connection_id, user):
    EVENTS.append(("disconnect", user["id"] if user else None))
"""

INDEX = """
from qr.runtime import socket

def handler(data, connection_id, user):
    if data == "boom":
        raise ValueError("handler bug")
    if data == "broadcast":
        return {"sent": socket.send({"to": "all of you"})}
    if data == "quiet":
        return None
    return {"echo": data, "user": user["name"] if user else None}
"""

CHAT = """
async def handler(data, action, user):
    return {"chat": data["text"], "action": action}
"""


class _Queues:
    def send(self, job: OutgoingJob) -> str:
        return "job-1"


@contextlib.contextmanager
def local_socket(root: Path, observer: Observer | None = None) -> Iterator[TestClient]:
    """The local platform installed, and a test client on the socket endpoint of ``root``."""
    sockets = LocalSockets()
    previous = ports.set_platform(Platform("local", _Queues(), sockets, LocalRegistry()))
    try:
        dispatch = SocketDispatch(scan(root), observer=observer)
        yield TestClient(LocalSocketApp(dispatch, sockets))
    finally:
        ports.set_platform(previous)


@pytest.fixture
def events() -> list[SocketEvent]:
    return []


@pytest.fixture
def client(make_project: MakeProject, events: list[SocketEvent]) -> Iterator[TestClient]:
    root = make_project(
        {
            "socket/_middleware.py": MIDDLEWARE,
            "socket/index.py": INDEX,
            "socket/chat.py": CHAT,
        }
    )
    with local_socket(root, events.append) as test_client:
        yield test_client


def hooks() -> list[Any]:
    (module,) = [m for n, m in sys.modules.items() if n.endswith(":socket/_middleware.py")]
    events: list[Any] = module.EVENTS
    return events


def login(ws: WebSocketTestSession, name: str) -> None:
    ws.send_json({"token": name})
    assert ws.receive_json() == {"welcome": name}


def test_messages_are_parsed_and_answered(client: TestClient) -> None:
    with client.websocket_connect("/") as ws:
        ws.send_json({"a": 1})
        assert ws.receive_json() == {"echo": {"a": 1}, "user": None}
        ws.send_text("not json")
        assert ws.receive_json() == {"echo": "not json", "user": None}
        ws.send_text("quiet")
        ws.send_text("42")
        assert ws.receive_json() == {"echo": 42, "user": None}


def test_binary_messages_stay_bytes(make_project: MakeProject) -> None:
    root = make_project(
        {
            "socket/index.py": "def handler(data):\n    return data[::-1] if isinstance(data, bytes) else 'text'\n"
        }
    )
    with local_socket(root) as test_client, test_client.websocket_connect("/") as ws:
        ws.send_bytes(b"\x00\x01\xff")
        assert ws.receive_bytes() == b"\xff\x01\x00"


def test_action_messages_go_to_their_file(client: TestClient) -> None:
    with client.websocket_connect("/") as ws:
        ws.send_json({"action": "chat", "text": "hi"})
        assert ws.receive_json() == {"chat": "hi", "action": "chat"}
        ws.send_json({"action": "unknown", "x": 1})
        assert ws.receive_json()["echo"] == {"action": "unknown", "x": 1}


def test_on_connect_refuses_with_the_status(client: TestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/?deny=1"):
        pass
    assert info.value.status_code == 403
    assert info.value.json() == {"error": "go away"}


def test_authentication_presence_and_user_fanout(client: TestClient) -> None:
    with client.websocket_connect("/") as first, client.websocket_connect("/") as second:
        login(first, "alice")
        login(second, "alice")
        # the welcome authenticate sent arrives only once the user is bound
        assert socket.is_online("alice")
        assert not socket.is_online("bob")
        first.send_text("hello")
        assert first.receive_json() == {"echo": "hello", "user": "Alice"}
        # socket.send inside a handler reaches every connection of the current user
        first.send_text("broadcast")
        assert first.receive_json() == {"to": "all of you"}
        assert second.receive_json() == {"to": "all of you"}
        assert first.receive_json() == {"sent": 2}
        # socket.to() works from anywhere with a platform, e.g. a job
        assert socket.to(["alice", "bob"]).send({"job": "done"}) == 2
        assert first.receive_json() == {"job": "done"}
        assert second.receive_json() == {"job": "done"}
    assert not socket.is_online("alice")
    seen = hooks()
    assert seen.count(("online", "alice")) == 1
    assert seen.count(("offline", "alice")) == 1
    assert seen.count(("disconnect", "alice")) == 2


def test_failed_authentication_closes_the_connection(client: TestClient) -> None:
    with client.websocket_connect("/") as ws:
        ws.send_json({"token": "bad"})
        assert ws.receive_json() == {"error": "bad token", "status": 401}
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 4401


def test_errors_are_reported_and_the_connection_survives(
    client: TestClient, events: list[SocketEvent]
) -> None:
    with client.websocket_connect("/") as ws:
        ws.send_text("boom")
        reply = ws.receive_json()
        assert reply["error"] == "internal error"
        assert len(reply["request_id"]) == 32
        ws.send_json({"token": "crash"})
        assert ws.receive_json()["error"] == "internal error"
        ws.send_text("x" * (MAX_MESSAGE_BYTES + 1))
        assert "over the 131072-byte limit" in ws.receive_json()["error"]
        ws.send_text("still here")
        assert ws.receive_json() == {"echo": "still here", "user": None}
    failed = [e for e in events if e.error]
    assert any("ValueError: handler bug" in (e.error or "") for e in failed)
    assert any(e.kind == "authenticate" and "auth bug" in (e.error or "") for e in failed)
    assert failed[0].file == "socket/index.py"


def test_socket_close_from_a_handler(make_project: MakeProject) -> None:
    root = make_project(
        {
            "socket/index.py": """
            from qr.runtime import socket

            def handler(data):
                socket.send("bye")
                socket.close(4000, "done")
            """
        }
    )
    with local_socket(root) as test_client, test_client.websocket_connect("/") as ws:
        ws.send_text("x")
        assert ws.receive_text() == "bye"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert (info.value.code, info.value.reason) == (4000, "done")


def test_no_socket_folder_refuses_connections(make_project: MakeProject) -> None:
    root = make_project({"api/index.py": "def get():\n    return {}\n"})
    with (
        local_socket(root) as test_client,
        pytest.raises(WebSocketDenialResponse) as info,
        test_client.websocket_connect("/"),
    ):
        pass
    assert info.value.status_code == 404


def test_send_needs_a_target_and_a_small_payload(tmp_path: Path) -> None:
    sockets, registry = LocalSockets(), LocalRegistry()
    previous = ports.set_platform(Platform("local", _Queues(), sockets, registry))
    try:
        with pytest.raises(SocketError, match=r"socket\.to\(user_id\)"):
            socket.send("hi")
        with pytest.raises(SocketError, match="over API Gateway's limit"):
            socket.to("u1").send("x" * (MAX_MESSAGE_BYTES + 1))
        # a job's user (no connection of its own) with no connections: nobody receives it
        job = context.Invocation("job", "j1", {"id": "u1"})
        with context.invocation(job):
            assert socket.send({"done": True}) == 0
    finally:
        ports.set_platform(previous)


def test_registry_presence() -> None:
    registry = LocalRegistry()
    registry.connect("c1")
    registry.connect("c2")
    assert registry.bind_user("c1", "u") is True
    assert registry.bind_user("c2", "u") is False
    assert registry.connections("u") == ["c1", "c2"]
    assert registry.disconnect("c1") == ("u", False)
    assert registry.disconnect("c2") == ("u", True)
    assert registry.disconnect("c3") == (None, False)
    assert not registry.is_online("u")
