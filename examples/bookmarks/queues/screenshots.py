"""Queue "screenshots": capture a bookmark's page, then tell its owner over WebSocket.

Its owner can follow each job at GET /_jobs/<job id> (``status_route``; POST /bookmarks answers
with the id in ``X-Job-Id``): status, progress and the result, readable by that user only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lib import db
from lib.capture import capture

from qr.runtime import queues, socket

# At most 10 screenshots a minute per user: a user who imports a pile of bookmarks waits, and
# nobody else's screenshots queue up behind theirs. On AWS a job over the limit comes back later
# and SQS counts that receive, so max_attempts leaves room for it.
config = {
    "timeout": 60,
    "max_attempts": 6,
    "rate_limit": {"limit": 10, "per": 60, "key": "user"},
    "status_route": True,
}
log = logging.getLogger(__name__)


@dataclass
class Screenshot:
    """The job's payload: pushes are validated against it, and the handler gets an instance."""

    id: str


def handler(payload: Screenshot, job: Any) -> dict[str, str] | None:
    user_id = job.user["id"]
    bookmark = db.find_one(payload.id, user_id)
    if bookmark is None:  # deleted meanwhile
        return None
    log.info("taking a screenshot of %s", bookmark["url"])
    job.progress(0.2, "capturing the page")
    screenshot = capture(bookmark["url"], bookmark["title"])
    job.progress(0.8, "storing the screenshot")
    db.update(bookmark["id"], user_id, screenshot=screenshot)
    # The job carries the pushing user, so this reaches that user's open connections.
    socket.send({"update": "bookmark", "id": bookmark["id"]})
    job.progress(1.0, "done")
    return {"id": bookmark["id"], "url": f"/bookmarks/{bookmark['id']}"}


queue = queues.self()
