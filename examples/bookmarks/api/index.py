"""GET / - what this backend does, with curl commands to try it."""

from __future__ import annotations

from qr.runtime import url

authenticate = None  # public


def get() -> dict[str, object]:
    base = url("/")
    return {
        "name": "bookmarks",
        "try": [
            f'curl -X POST {base}tokens -d \'{{"user": "alice"}}\'',
            f"curl {base}bookmarks -H 'Authorization: Bearer TOKEN' -F title=Example -F url=https://example.com",
            f"curl {base}bookmarks -H 'Authorization: Bearer TOKEN'",
        ],
        "websocket": base.replace("http", "ws", 1) + ' then send {"token": "TOKEN"}',
    }
