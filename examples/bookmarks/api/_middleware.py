"""Every route under api/ needs a signed token (``Authorization: Bearer <token>``)."""

from __future__ import annotations

from lib import auth

from qr.runtime import HTTPError


def authenticate(bearer_token: str | None) -> dict[str, str]:
    if bearer_token is None:
        raise HTTPError(401, "sign in: POST /tokens, then send Authorization: Bearer <token>")
    user = auth.verify(bearer_token)
    if user is None:
        raise HTTPError(403, "invalid token")
    return user
