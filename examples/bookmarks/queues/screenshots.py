"""Queue "screenshots": capture a bookmark's page, then tell its owner over WebSocket."""

from __future__ import annotations

import logging
from typing import Any

from lib import db
from lib.capture import capture

from qr.runtime import queues, socket

config = {"timeout": 60, "max_attempts": 3}
log = logging.getLogger(__name__)


def handler(payload: dict[str, str], job: Any) -> dict[str, str] | None:
    user_id = job.user["id"]
    bookmark = db.find_one(payload["id"], user_id)
    if bookmark is None:  # deleted meanwhile
        return None
    log.info("taking a screenshot of %s", bookmark["url"])
    screenshot = capture(bookmark["url"], bookmark["title"])
    db.update(bookmark["id"], user_id, screenshot=screenshot)
    # The job carries the pushing user, so this reaches that user's open connections.
    socket.send({"update": "bookmark", "id": bookmark["id"]})
    return {"id": bookmark["id"]}


queue = queues.self()
