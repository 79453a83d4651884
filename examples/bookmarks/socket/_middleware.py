"""WebSocket: the first message must be {"token": "..."}; presence is logged."""

from __future__ import annotations

import logging
from typing import Any

from lib import auth

from qr.runtime import HTTPError, socket

log = logging.getLogger(__name__)


def authenticate(data: Any) -> dict[str, str] | None:
    if not isinstance(data, dict) or "token" not in data:
        return None  # not signed in yet: socket/index.py answers
    user = auth.verify(data["token"])
    if user is None:
        raise HTTPError(401, "invalid token")  # the connection is closed (4401)
    socket.send({"authenticated": user["id"]})
    return user


def on_online(user: dict[str, str]) -> None:
    log.info("%s is online", user["id"])


def on_offline(user: dict[str, str]) -> None:
    log.info("%s went offline", user["id"])
