"""Calling an ASGI app directly with a hand-built scope, for what the test client cannot show
(raw paths, streamed bodies, platform state, WebSocket and lifespan scopes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Scope


def http_scope(
    raw_path: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    state: Mapping[str, Any] | None = None,
    kind: str = "http",
) -> Scope:
    scope: Scope = {
        "type": kind,
        "method": method,
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": b"",
        "headers": list(headers),
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def call(app: ASGIApp, scope: Scope, chunks: Iterable[bytes] = (b"",)) -> tuple[list[Message], int]:
    """Run ``app`` on ``scope`` feeding ``chunks`` as the body; returns what it sent and how many
    chunks it asked for."""
    pending = list(chunks)
    asked = 0

    async def receive() -> Message:
        nonlocal asked
        if asked >= len(pending):
            return {"type": "http.disconnect"}
        asked += 1
        return {
            "type": "http.request",
            "body": pending[asked - 1],
            "more_body": asked < len(pending),
        }

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent, asked
