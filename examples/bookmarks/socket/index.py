"""WebSocket messages after (or before) signing in."""

from __future__ import annotations

from typing import Any


def handler(data: Any, user: dict[str, str] | None) -> dict[str, Any]:
    if user is None:
        return {"error": 'sign in first: send {"token": "..."}'}
    if data == "ping":
        return {"pong": user["id"]}
    return {"echo": data}
