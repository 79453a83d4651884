"""/bookmarks - list the user's bookmarks (GET) and add one (POST, JSON or a form)."""

from __future__ import annotations

from typing import Any

from lib import db

from qr.runtime import HTTPError, Response, queues, url


def get(user: dict[str, str]) -> list[dict[str, Any]]:
    return db.find_all(user["id"])


def post(body: Any, user: dict[str, str]) -> Response:
    title, link = _field(body, "title"), _field(body, "url")
    if not link.startswith(("http://", "https://")):
        raise HTTPError(422, "url must start with http:// or https://")
    bookmark = db.create(user["id"], title, link)
    # Screenshots take a while and may fail: a queue retries them in the background.
    job_id = queues["screenshots"].push({"id": bookmark["id"]})
    # The screenshot job can be followed at GET /_jobs/<id> (queues/screenshots.py).
    return Response.redirect(
        url("/bookmarks/[id]", id=bookmark["id"]), 303, headers={"X-Job-Id": job_id}
    )


def _field(body: Any, name: str) -> str:
    value = body.get(name) if hasattr(body, "get") else None
    if not isinstance(value, str) or not value.strip():
        raise HTTPError(422, f"{name} is required")
    return value.strip()
