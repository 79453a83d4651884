"""FIFO queue "update_profile.fifo": apply a user's profile changes in order."""

from __future__ import annotations

from typing import Any

from lib import db

from qr.runtime import socket


def handler(payload: dict[str, str], job: Any) -> dict[str, Any]:
    profile = db.save_profile(job.group_id, payload.get("name"), payload.get("email"))
    socket.send({"update": "profile", "updates": profile["updates"]})
    return profile
