"""Flow control in the local engine's database: rate-limit buckets, debounced keys, chain steps.

``steps`` records each chain step pushed (``Engine.push_steps``), keyed by the finished job's id
and the step's index, so a job run again does not push its next step twice.

``debounced`` maps each (queue, debounce key) to its latest job: a debounced push deletes that
job if it is still waiting (``supersede``) and becomes the key's job (``remember``), in the
push's transaction.

``admit`` runs inside ``Engine.claim``'s transaction: of the jobs a claim is about to take, those
whose bucket has a token are claimed, the others get a later ``visible_ms`` (when a token will be
there, spread out one token apart) without a receive being counted. Doing it in the claim's own
transaction costs no extra commit, which is what keeps a never-reached limit nearly free.

``LocalBuckets`` is the ``qr.runtime.flow.BucketStore`` port over the same table (the contract
suite runs it beside the DynamoDB store). ``LocalSteps`` reads and writes ``steps`` for a consumer
other than the engine's worker: the function under ``qr dev --docker``, whose ``DynamoSteps``
records a step after sending it (``qr.cli.docker.flow_table``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from qr.runtime import flow
from qr.runtime.flow import Bucket, RateLimit

if TYPE_CHECKING:
    from qr.runtime.local.engine import Engine

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS buckets("
    "id TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS debounced("
    "queue TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, job_id TEXT NOT NULL, "
    "PRIMARY KEY(queue, key)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS steps("
    "key TEXT PRIMARY KEY, pushed TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID",
)
STEP_RETENTION_MS = 14 * 24 * 3600 * 1000
"""Chain step records outlive any redelivery of their job (SQS keeps a message 14 days at most)."""


def pending(db: sqlite3.Connection, queue: str, key: str) -> int | None:
    """The ``seq`` of the key's latest job while that job is still queued."""
    row = db.execute(
        "SELECT d.seq FROM debounced d JOIN jobs j ON j.seq=d.seq AND j.job_id=d.job_id "
        "WHERE d.queue=? AND d.key=?",
        (queue, key),
    ).fetchone()
    return None if row is None else int(row[0])


def supersede(db: sqlite3.Connection, queue: str, key: str, now_ms: int) -> str | None:
    """Delete the key's pending job (a debounced push replaces it); one being worked on stays.
    Returns the id of the job deleted."""
    row = db.execute(
        "SELECT seq, job_id FROM debounced WHERE queue=? AND key=?", (queue, key)
    ).fetchone()
    if row is None:
        return None
    cursor = db.execute(  # the job id too: SQLite may reuse a deleted job's seq
        "DELETE FROM jobs WHERE seq=? AND job_id=? AND NOT (receipt IS NOT NULL AND visible_ms>?)",
        (row[0], row[1], now_ms),
    )
    return str(row[1]) if cursor.rowcount else None


def sweep(db: sqlite3.Connection, now_ms: int) -> None:
    """Forget debounce keys whose job is gone (done or dead) and old chain step records."""
    db.execute(
        "DELETE FROM debounced WHERE NOT EXISTS "
        "(SELECT 1 FROM jobs WHERE jobs.seq=debounced.seq AND jobs.job_id=debounced.job_id)"
    )
    db.execute("DELETE FROM steps WHERE created_ms<?", (now_ms - STEP_RETENTION_MS,))


def remember(db: sqlite3.Connection, queue: str, key: str, seq: int, job_id: str) -> None:
    db.execute("INSERT OR REPLACE INTO debounced VALUES(?,?,?,?)", (queue, key, seq, job_id))


def load(db: sqlite3.Connection, bucket: str) -> Bucket | None:
    row = db.execute("SELECT tokens, updated_ms FROM buckets WHERE id=?", (bucket,)).fetchone()
    return None if row is None else Bucket(float(row[0]), row[1] / 1000)


def save(db: sqlite3.Connection, bucket: str, state: Bucket) -> None:
    db.execute(  # an upsert updates the row in place (INSERT OR REPLACE deletes and re-inserts)
        "INSERT INTO buckets VALUES(?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "tokens=excluded.tokens, updated_ms=excluded.updated_ms",
        (bucket, state.tokens, int(state.updated * 1000)),
    )


def admit(
    db: sqlite3.Connection, queue: str, seqs: Sequence[int], limit: RateLimit, now_ms: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Split ``seqs`` (claim order) into those to claim and ``(seq, visible_ms)`` to postpone."""
    now = now_ms / 1000
    if limit.key is None:
        keys = dict.fromkeys(seqs, "")
    else:
        rows = db.execute(
            "SELECT seq, group_id, user_id, body, content_type FROM jobs "
            f"WHERE seq IN ({','.join('?' * len(seqs))})",
            tuple(seqs),
        ).fetchall()
        keys = {
            seq: flow.key_value(
                limit, group_id=group_id, user_id=user_id, body=body, content_type=content_type
            )
            for seq, group_id, user_id, body, content_type in rows
        }
    states: dict[str, Bucket | None] = {}
    waiting: dict[str, int] = {}
    allowed: list[int] = []
    postponed: list[tuple[int, int]] = []
    for seq in seqs:
        bucket = flow.bucket_id(queue, limit, keys.get(seq, ""))
        if bucket not in states:
            states[bucket] = load(db, bucket)
        state, wait = flow.take(states[bucket], limit, now)
        states[bucket] = state
        if wait <= 0:
            allowed.append(seq)
            continue
        waiting[bucket] = waiting.get(bucket, 0) + 1
        delay = flow.wait_for(state.tokens, limit, waiting[bucket])
        postponed.append((seq, now_ms + max(1, int(delay * 1000 + 0.999))))
    for bucket, after in states.items():
        if after is not None:
            save(db, bucket, after)
    return allowed, postponed


class LocalBuckets:
    """``BucketStore`` on the engine's database: one transaction per take."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(self, bucket: str, limit: RateLimit) -> float:
        with self.engine._transaction() as db:
            state, wait = flow.take(load(db, bucket), limit, self.engine.clock())
            save(db, bucket, state)
        return wait


class LocalSteps:
    """Chain step records on the engine's database, one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pushed(self, key: str) -> str | None:
        """The job id the step ``key`` was pushed as (``None``: not recorded)."""
        with self.engine._transaction() as db:
            row = db.execute("SELECT pushed FROM steps WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(self, key: str, pushed: str) -> None:
        with self.engine._transaction() as db:
            db.execute(
                "INSERT INTO steps VALUES(?,?,?) ON CONFLICT(key) DO UPDATE SET "
                "pushed=excluded.pushed",
                (key, pushed, self.engine.now_ms()),
            )
