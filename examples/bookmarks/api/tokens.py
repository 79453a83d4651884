"""POST /tokens {"user": "alice"} - a demo sign-in that issues a signed token."""

from __future__ import annotations

from lib import auth

from qr.runtime import HTTPError

authenticate = None  # public


def post(body: object) -> dict[str, str]:
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, str) or not user.isidentifier():
        raise HTTPError(400, 'send {"user": "<name>"} (letters, digits and _)')
    return {"token": auth.issue(user)}
