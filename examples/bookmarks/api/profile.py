"""/profile - read it (GET); updates (PUT) go through a FIFO queue, in order per user."""

from __future__ import annotations

from typing import Any

from lib import db

from qr.runtime import HTTPError, Response, queues


def get(user: dict[str, str]) -> dict[str, Any]:
    return db.get_profile(user["id"])


def put(body: Any, user: dict[str, str]) -> Response:
    if not isinstance(body, dict) or not set(body) <= {"name", "email"}:
        raise HTTPError(422, 'send {"name": ..., "email": ...}')
    # One group per user: a user's updates apply in the order they were made.
    job_id = queues["update_profile.fifo"].group(user["id"]).push(body)
    return Response.json({"queued": job_id}, status=202)
