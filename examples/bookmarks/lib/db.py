"""Bookmarks and profiles in SQLite (``BOOKMARKS_DB``, default ``.qr/bookmarks.sqlite3``).

One short connection per call: handlers run in worker threads and jobs in the queue worker.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
create table if not exists bookmarks (
  id text primary key, user_id text not null, title text not null, url text not null,
  screenshot text, created_at text not null
);
create table if not exists profiles (
  user_id text primary key, name text, email text, updates integer not null default 0
);
"""


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    path = Path(
        os.environ.get("BOOKMARKS_DB") or Path(__file__).parent.parent / ".qr/bookmarks.sqlite3"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        connection.executescript(_SCHEMA)
        with connection:
            yield connection
    finally:
        connection.close()


def create(user_id: str, title: str, url: str) -> dict[str, Any]:
    bookmark = {
        "id": uuid.uuid4().hex[:8],
        "user_id": user_id,
        "title": title,
        "url": url,
        "screenshot": None,
        "created_at": datetime.now(UTC).isoformat(),
    }
    with _db() as db:
        db.execute(
            "insert into bookmarks values (:id, :user_id, :title, :url, :screenshot, :created_at)",
            bookmark,
        )
    return bookmark


def find_all(user_id: str) -> list[dict[str, Any]]:
    with _db() as db:
        rows = db.execute(
            "select * from bookmarks where user_id = ? order by created_at", (user_id,)
        )
        return [dict(row) for row in rows]


def find_one(bookmark_id: str, user_id: str) -> dict[str, Any] | None:
    with _db() as db:
        row = db.execute(
            "select * from bookmarks where id = ? and user_id = ?", (bookmark_id, user_id)
        ).fetchone()
        return dict(row) if row else None


def update(bookmark_id: str, user_id: str, **fields: Any) -> dict[str, Any] | None:
    allowed = {k: v for k, v in fields.items() if k in ("title", "url", "screenshot")}
    with _db() as db:
        for key, value in allowed.items():
            db.execute(
                f"update bookmarks set {key} = ? where id = ? and user_id = ?",
                (value, bookmark_id, user_id),
            )
    return find_one(bookmark_id, user_id)


def delete(bookmark_id: str, user_id: str) -> bool:
    with _db() as db:
        cursor = db.execute(
            "delete from bookmarks where id = ? and user_id = ?", (bookmark_id, user_id)
        )
        return cursor.rowcount > 0


def added_since(since: datetime) -> dict[str, int]:
    """User id -> bookmarks added since ``since``."""
    with _db() as db:
        rows = db.execute(
            "select user_id, count(*) from bookmarks where created_at >= ? group by user_id",
            (since.isoformat(),),
        )
        return {row[0]: row[1] for row in rows}


def save_profile(user_id: str, name: str | None, email: str | None) -> dict[str, Any]:
    with _db() as db:
        db.execute(
            "insert into profiles (user_id, name, email, updates) values (?, ?, ?, 1) "
            "on conflict(user_id) do update set name = excluded.name, email = excluded.email, "
            "updates = updates + 1",
            (user_id, name, email),
        )
    return get_profile(user_id)


def get_profile(user_id: str) -> dict[str, Any]:
    with _db() as db:
        row = db.execute("select * from profiles where user_id = ?", (user_id,)).fetchone()
        return dict(row) if row else {"user_id": user_id, "name": None, "email": None, "updates": 0}
