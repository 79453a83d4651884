"""Schedule "daily_digest": every day at 09:00 UTC, tell users how many bookmarks they added."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lib import db

from qr.runtime import socket

schedule = "0 9 * * *"
config = {"timeout": 120}


def handler(job: Any) -> dict[str, int]:
    counts = db.added_since(job.scheduled_at - timedelta(days=1))
    delivered = 0
    for user_id, count in counts.items():
        delivered += socket.to(user_id).send({"digest": {"added_today": count}})
    return {"users": len(counts), "delivered": delivered}
