"""The local platform's WebSocket endpoint: an ASGI app for ``websocket`` scopes.

Each connection:

1. gets a connection id and asks ``SocketDispatch.connect``; an ``HTTPError`` refuses the upgrade
   with that status (the ASGI WebSocket denial response where the server supports it, which
   uvicorn does; otherwise a close before accepting, which servers answer with 403);
2. is accepted, then runs two tasks until either ends: a reader that hands each message to
   ``SocketDispatch.receive`` (one at a time, so a connection's messages are handled in order) and
   a writer that drains the connection's outbox (``LocalSockets``), so ``socket.send`` from any
   thread reaches the client in order;
3. on the way out, ``SocketDispatch.disconnect`` runs ``on_disconnect`` / ``on_offline``, shielded
   from cancellation (a server shutting down, a test client leaving) for up to 10 seconds.

Messages over API Gateway's limit are refused with close code 1009 by the server itself when the
app is served with ``ws_max_size=MAX_MESSAGE_BYTES``; the dispatcher checks again (and answers with
an error message) for servers that do not enforce it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import anyio
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from qr.runtime.errors import HTTPError
from qr.runtime.local.connections import Close, LocalSockets, Outgoing
from qr.runtime.sockets import SocketDispatch

DISCONNECT_TIMEOUT = 10.0
"""Seconds ``on_disconnect`` / ``on_offline`` may take when the connection was cancelled."""


def new_connection_id() -> str:
    """Shaped like API Gateway's (12 URL-safe characters)."""
    return secrets.token_urlsafe(9)


class LocalSocketApp:
    """ASGI app serving WebSocket connections through ``dispatch`` (which may be swapped)."""

    def __init__(self, dispatch: SocketDispatch, sockets: LocalSockets) -> None:
        self.dispatch = dispatch
        self.sockets = sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        websocket = WebSocket(scope, receive, send)
        connection_id = new_connection_id()
        outbox = self.sockets.attach(connection_id)
        try:
            try:
                await self.dispatch.connect(connection_id, websocket)
            except HTTPError as exc:
                await _refuse(websocket, exc)
                return
            try:
                await websocket.accept()
                await _serve(websocket, connection_id, outbox, self.dispatch)
            finally:
                # Shielded: disconnect hooks run even when the server cancels the connection.
                with anyio.move_on_after(DISCONNECT_TIMEOUT, shield=True):
                    await self.dispatch.disconnect(connection_id)
        finally:
            self.sockets.detach(connection_id)


async def _serve(
    websocket: WebSocket,
    connection_id: str,
    outbox: asyncio.Queue[Outgoing],
    dispatch: SocketDispatch,
) -> None:
    reader = asyncio.create_task(_read(websocket, connection_id, dispatch))
    writer = asyncio.create_task(_write(websocket, outbox))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _read(websocket: WebSocket, connection_id: str, dispatch: SocketDispatch) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        await dispatch.receive(connection_id, data, websocket)


async def _write(websocket: WebSocket, outbox: asyncio.Queue[Outgoing]) -> None:
    while True:
        item = await outbox.get()
        if isinstance(item, Close):
            if websocket.application_state != WebSocketState.DISCONNECTED:
                await websocket.close(item.code, item.reason)
            return
        if isinstance(item, bytes):
            await websocket.send_bytes(item)
        else:
            await websocket.send_text(item)


async def _refuse(websocket: WebSocket, error: HTTPError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse({"error": error.detail}, error.status, headers=error.headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + error.status, reason=str(error.detail)[:120])
