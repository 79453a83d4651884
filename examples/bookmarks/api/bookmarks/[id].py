"""/bookmarks/{id} - read (GET), rename (PUT) and delete (DELETE) one bookmark."""

from __future__ import annotations

from typing import Any

from lib import db

from qr.runtime import HTTPError, url

url_for_bookmark = url.self()


def get(id: str, user: dict[str, str]) -> dict[str, Any]:
    bookmark = db.find_one(id, user["id"])
    if bookmark is None:
        raise HTTPError(404, f"no bookmark {id}")
    return bookmark


def put(id: str, body: Any, user: dict[str, str]) -> dict[str, Any]:
    get(id, user)
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not title.strip():
        raise HTTPError(422, "title is required")
    updated = db.update(id, user["id"], title=title.strip())
    assert updated is not None
    return updated


def delete(id: str, user: dict[str, str]) -> None:
    if not db.delete(id, user["id"]):
        raise HTTPError(404, f"no bookmark {id}")
