"""Signed tokens: ``<user id>.<HMAC-SHA256>``. A stand-in for JWTs that needs no dependency."""

from __future__ import annotations

import hashlib
import hmac
import os


def _secret() -> bytes:
    return os.environ.get("BOOKMARKS_SECRET", "dev-secret-change-me").encode()


def issue(user_id: str) -> str:
    signature = hmac.new(_secret(), user_id.encode(), hashlib.sha256).hexdigest()
    return f"{user_id}.{signature}"


def verify(token: object) -> dict[str, str] | None:
    """The user a token belongs to, or ``None`` for a missing or forged token."""
    if not isinstance(token, str) or "." not in token:
        return None
    user_id, _, signature = token.rpartition(".")
    expected = hmac.new(_secret(), user_id.encode(), hashlib.sha256).hexdigest()
    if not user_id or not hmac.compare_digest(signature, expected):
        return None
    return {"id": user_id}
