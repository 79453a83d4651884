"""Job state on the local platform: the ``job_state`` table of the queue engine's database.

The engine writes it inside its own transactions (claim -> ``running``, ack -> ``succeeded``,
fail -> ``failed``/``dead``, release -> ``queued``, a spent lease -> ``dead``, cancel or purge ->
``cancelled``), so the state and the queue never disagree, even after ``kill -9``. A push writes
no state row: a job that was never claimed is its ``jobs`` row (``queued``, or ``delayed`` while
its delay runs; payload and origin are kept there too), so every read falls back to that row, and
the claim makes the rows of its whole batch in one ``INSERT ... SELECT``. Operations that end or
hold back a job nobody claimed yet (cancel, purge, a debounced push replacing it, a rate-limit
postponement) give it its row first (``remember``); only claimed jobs are dead-lettered. A job whose lease ran out (its
worker died) reads as ``queued`` with that attempt counted, as visibility expiry does on SQS; a
delayed job whose delay is over reads as ``queued``.

``SqliteJobStore`` is the ``JobStore`` port over the same database (``jobs.get/cancel``, progress,
``qr jobs``). Its ``start``/``finish`` are the writes a consumer other than the engine's own worker
makes (the AWS adapter makes the same ones on DynamoDB; the shared contract tests drive both).

Rows expire ``keep_results`` seconds after the job finished: reads skip them and the engine
deletes them at most once a minute. A queue with ``keep_results = 0`` writes no state at all, and
its waiting jobs read as unknown.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qr.runtime.ports import DEFAULT_KEEP_RESULTS, STATUSES, JobStart, JobState, JobStatus

if TYPE_CHECKING:
    from qr.runtime.local.engine import Engine

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_state(
  job_id TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  seq INTEGER,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  user_id TEXT,
  result TEXT,
  error TEXT,
  progress REAL,
  progress_message TEXT,
  cancel INTEGER NOT NULL DEFAULT 0,
  queued_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  keep_ms INTEGER NOT NULL,
  expires_ms INTEGER
) WITHOUT ROWID
"""

ADDED_COLUMNS = {
    # what the dashboard shows and replays: the payload as pushed, every attempt, where the job
    # came from (the request, job, socket message or schedule run that pushed it)
    "body": "TEXT",
    "content_type": "TEXT",
    "group_id": "TEXT",
    "history": "TEXT",
    "origin_kind": "TEXT",
    "origin_id": "TEXT",
}
JOBS_ADDED_COLUMNS = {
    # a never-claimed job's origin lives on its queue row until the claim copies it
    "origin_kind": "TEXT",
    "origin_id": "TEXT",
}


def migrate(db: sqlite3.Connection) -> None:
    """Add the columns a database made by an older qr lacks (SQLite adds them in place). Its
    ``job_state`` rows of jobs not claimed yet (older versions wrote one per push) stay valid: the
    claim updates them."""
    for table, columns in (("job_state", ADDED_COLUMNS), ("jobs", JOBS_ADDED_COLUMNS)):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    # No index on origin_id or queued_ms: each costs every push an index write (a quarter of the
    # push rate for three of them, measured), while a trace or a listing of 10,000 jobs scans
    # and sorts them in milliseconds.


_FINAL = "('succeeded','dead','cancelled')"
_COLUMNS = (
    "s.job_id, s.queue, s.status, s.attempts, s.user_id, s.result, s.error, s.progress, "
    "s.progress_message, s.cancel, s.queued_ms, s.started_ms, s.finished_ms, s.seq, "
    "j.visible_ms, 0"
)
_FROM = "FROM job_state s LEFT JOIN jobs j ON j.seq = s.seq AND j.job_id = s.job_id"


_COPY = (
    "INSERT INTO job_state(job_id, queue, seq, status, attempts, user_id, queued_ms, started_ms, "
    "keep_ms, body, content_type, group_id, origin_kind, origin_id) SELECT job_id, queue, seq, "
    "{status}, received_count, user_id, queued_ms, {started}, ?, body, content_type, group_id, "
    "origin_kind, origin_id FROM jobs WHERE {where} ON CONFLICT(job_id) DO {conflict}"
)


def running(db: sqlite3.Connection, seqs: Sequence[int], now: int, keep_ms: int) -> None:
    """Claimed (``jobs.received_count`` already counts this receive): one statement makes the
    batch's rows from their ``jobs`` rows, or moves the rows jobs claimed before already have."""
    db.execute(
        _COPY.format(
            status="'running'",
            started="?",
            where=f"seq IN ({','.join('?' * len(seqs))})",
            conflict="UPDATE SET status='running', attempts=excluded.attempts, "
            "started_ms=excluded.started_ms, seq=excluded.seq",
        ),
        (now, keep_ms, *seqs),
    )


def remember(
    db: sqlite3.Connection, now: int, keep_ms: int, *, seqs: Sequence[int] = (), queue: str = ""
) -> None:
    """Give jobs never claimed (``seqs``, or every job of ``queue``) the row their ``jobs`` row
    stood for (``queued``/``delayed``), before an operation that ends or postpones them; rows that
    exist are left as they are."""
    where, values = (
        (f"seq IN ({','.join('?' * len(seqs))})", list(seqs)) if seqs else ("queue=?", [queue])
    )
    db.execute(
        _COPY.format(
            status="CASE WHEN visible_ms>? THEN 'delayed' ELSE 'queued' END",
            started="NULL",
            where=where,
            conflict="NOTHING",
        ),
        (now, keep_ms, *values),
    )


def succeeded(db: sqlite3.Connection, job_ids: Sequence[str], now: int) -> None:
    """Acked without a result or an unwritten progress report (the common case, in one go)."""
    db.execute(
        "UPDATE job_state SET status='succeeded', finished_ms=?1, expires_ms=?1+keep_ms "
        f"WHERE job_id IN ({','.join('?' * len(job_ids))}) AND status NOT IN {_FINAL}",
        (now, *job_ids),
    )


def finished(
    db: sqlite3.Connection,
    job_id: str,
    status: JobStatus,
    now: int,
    *,
    result: str | None = None,
    error: dict[str, str] | None = None,
    progress: tuple[float, str | None] | None = None,
    keep_ms: int | None = None,
) -> bool:
    """Record an outcome; ``failed`` leaves the job to be retried. ``False``: already final."""
    final = status != "failed"
    value, message = progress if progress is not None else (None, None)
    cursor = db.execute(
        "UPDATE job_state SET status=?, result=COALESCE(?, result), error=COALESCE(?, error), "
        "progress=COALESCE(?, progress), progress_message=CASE WHEN ? THEN ? "
        "ELSE progress_message END, keep_ms=COALESCE(?, keep_ms), "
        "finished_ms=CASE WHEN ? THEN ? ELSE finished_ms END, "
        "expires_ms=CASE WHEN ? THEN ?+COALESCE(?, keep_ms) ELSE expires_ms END, "
        "history=json_insert(COALESCE(history, '[]'), '$[#]', json_object('attempt', attempts, "
        "'status', ?, 'started_ms', started_ms, 'finished_ms', ?, 'error', json(?))) "
        f"WHERE job_id=? AND status NOT IN {_FINAL}",
        (
            status,
            result,
            None if error is None else json.dumps(error),
            value,
            progress is not None,
            message,
            keep_ms,
            final,
            now,
            final,
            now,
            keep_ms,
            status,
            now,
            None if error is None else json.dumps(error),
            job_id,
        ),
    )
    return cursor.rowcount == 1


def detail(db: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    """What the dashboard adds to a job's state: payload, attempts (latest first), origin."""
    row = db.execute(
        "SELECT body, content_type, group_id, history, origin_kind, origin_id, status, attempts, "
        "started_ms, finished_ms FROM job_state WHERE job_id=?",
        (job_id,),
    ).fetchone()
    if row is None:  # never claimed: its queue row has all there is (a scan, see ``read``)
        row = db.execute(
            "SELECT body, content_type, group_id, NULL, origin_kind, origin_id, 'queued', 0, "
            "NULL, NULL FROM jobs WHERE job_id=?",
            (job_id,),
        ).fetchone()
    if row is None:
        return None
    body, content_type, group_id, history, origin_kind, origin_id = row[:6]
    status, attempts, started_ms, finished_ms = row[6:]
    log: list[dict[str, Any]] = json.loads(history) if history else []
    if status == "succeeded" and (not log or log[-1]["attempt"] != attempts):
        # the batch ack (``succeeded``) writes no history: its attempt is the row itself
        log.append(
            {
                "attempt": attempts,
                "status": status,
                "started_ms": started_ms,
                "finished_ms": finished_ms,
                "error": None,
            }
        )
    return {
        "body": body,
        "content_type": content_type,
        "group_id": group_id,
        "attempts": list(reversed(log)),
        "origin": None if origin_id is None else {"kind": origin_kind, "id": origin_id},
    }


def payload(
    db: sqlite3.Connection, job_id: str
) -> tuple[str, str, str, str | None, str | None] | None:
    """``(queue, body, content_type, group_id, user_id)`` of a job, claimed or not (replay)."""
    return db.execute(  # type: ignore[no-any-return]
        "SELECT queue, body, content_type, group_id, user_id FROM job_state "
        "WHERE job_id=?1 AND body IS NOT NULL UNION ALL "
        "SELECT queue, body, content_type, group_id, user_id FROM jobs WHERE job_id=?1 "
        "AND NOT EXISTS(SELECT 1 FROM job_state s WHERE s.job_id=?1 AND s.body IS NOT NULL)",
        (job_id,),
    ).fetchone()


def pushed_by(
    db: sqlite3.Connection, origin_id: str, now: int, stateless: frozenset[str] = frozenset()
) -> list[JobState]:
    """The jobs pushed while ``origin_id`` (a request, job, message or schedule run) ran."""
    rows = db.execute(
        f"SELECT * FROM (SELECT {_COLUMNS} {_FROM} WHERE s.origin_id=?1 AND "
        f"(s.expires_ms IS NULL OR s.expires_ms>=?2) UNION ALL {_WAITING} AND j.origin_id=?1) "
        "ORDER BY 11, 1",
        (origin_id, now),
    )
    return [
        state
        for row in rows
        if not (row[15] and row[1] in stateless) and (state := _state(row, now)) is not None
    ]


def released(db: sqlite3.Connection, job_id: str) -> None:
    """Given back unfinished (shutdown): queued again, that receive not counted."""
    db.execute(
        "UPDATE job_state SET status='queued', attempts=MAX(attempts-1, 0) "
        f"WHERE job_id=? AND status NOT IN {_FINAL}",
        (job_id,),
    )


def cancel_flag(db: sqlite3.Connection, job_id: str) -> bool:
    row = db.execute("SELECT cancel FROM job_state WHERE job_id=?", (job_id,)).fetchone()
    return bool(row and row[0])


def sweep(db: sqlite3.Connection, now: int) -> None:
    db.execute("DELETE FROM job_state WHERE expires_ms<?", (now,))


_WAITING = (
    "SELECT j.job_id, j.queue, CASE WHEN j.visible_ms>?2 THEN 'delayed' ELSE 'queued' END, "
    "j.received_count, j.user_id, NULL, NULL, NULL, NULL, 0, j.queued_ms, NULL, NULL, NULL, NULL, 1 "
    "FROM jobs j WHERE NOT EXISTS(SELECT 1 FROM job_state x WHERE x.job_id=j.job_id)"
)
"""Jobs never claimed: no state row, their ``jobs`` row says all there is (``_COLUMNS`` order)."""


def read(
    db: sqlite3.Connection, job_id: str, now: int, stateless: frozenset[str] = frozenset()
) -> JobState | None:
    row = db.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE s.job_id=?1 AND (s.expires_ms IS NULL OR "
        f"s.expires_ms>=?2) UNION ALL {_WAITING} AND j.job_id=?1",
        (job_id, now),
    ).fetchone()
    # The second half scans ``jobs`` (it has no index on job_id: one would cost every push the
    # page write a state row did), only for an id with no state row: under 1 ms per 10,000 jobs.
    if row is None or (row[15] and row[1] in stateless):
        return None
    return _state(row, now)


def listing(
    db: sqlite3.Connection,
    now: int,
    queue: str | None,
    status: str | None,
    limit: int,
    stateless: frozenset[str] = frozenset(),
) -> list[JobState]:
    kept, waiting = "(s.expires_ms IS NULL OR s.expires_ms>=?2)", ""
    if queue is not None:
        kept += " AND s.queue=?1"
        waiting = " AND j.queue=?1"
    rows = db.execute(
        f"SELECT * FROM (SELECT {_COLUMNS} {_FROM} WHERE {kept} UNION ALL {_WAITING}{waiting}) "
        "ORDER BY 11 DESC, 1 DESC",
        (queue, now),
    )
    found: list[JobState] = []
    for row in rows:  # the status shown may be derived, so filter after reading
        if row[15] and row[1] in stateless:
            continue  # a waiting job of a queue that keeps no state
        state = _state(row, now)
        if state is not None and (status is None or state.status == status):
            found.append(state)
            if len(found) >= limit:
                break
    return found


def _state(row: tuple[Any, ...], now: int) -> JobState | None:
    (job_id, queue, status, attempts, user_id, result, error, progress, message, cancel) = row[:10]
    queued_ms, started_ms, finished_ms, seq, visible_ms = row[10:15]
    waiting = seq is not None and (visible_ms is None or visible_ms <= now)
    if status in ("running", "delayed") and waiting:
        # running: its worker died and the lease ran out, it waits to be claimed again (the
        # attempt stays counted, as on SQS); delayed: the delay is over
        status = "queued"
    return JobState(
        job_id=job_id,
        queue=queue,
        status=status,
        attempts=attempts,
        result=None if result is None else json.loads(result),
        error=None if error is None else json.loads(error),
        progress=progress,
        progress_message=message,
        queued_at=queued_ms / 1000,
        started_at=None if started_ms is None else started_ms / 1000,
        finished_at=None if finished_ms is None else finished_ms / 1000,
        user=user_id,
        cancel_requested=bool(cancel) and status == "running",
    )


class SqliteJobStore:
    """The ``JobStore`` of the local platform, over an ``Engine``'s database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, job_id: str) -> JobState | None:
        return self.engine.job_state(job_id)

    def list(
        self, *, queue: str | None = None, status: str | None = None, limit: int = 50
    ) -> Sequence[JobState]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown job status {status!r} (statuses: {', '.join(STATUSES)})")
        return self.engine.job_states(queue=queue, status=status, limit=limit)

    def cancel(self, job_id: str) -> JobState | None:
        return self.engine.cancel(job_id)

    def progress(self, job_id: str, value: float, message: str | None) -> bool:
        return self.engine.progress(job_id, value, message)

    def cancel_requested(self, job_id: str) -> bool:
        return self.engine.cancel_requested(job_id)

    def start(self, job: JobStart) -> bool:
        return self.engine.record_start(job)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        keep: float = DEFAULT_KEEP_RESULTS,
        result: Any = None,
        error: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> bool:
        return self.engine.record_finish(
            job_id, status, keep=keep, result=result, error=error, progress=progress
        )
