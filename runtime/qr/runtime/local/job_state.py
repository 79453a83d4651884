"""Job state on the local platform: the ``job_state`` table of the queue engine's database.

The engine writes it inside its own transactions, so the state and the queue never disagree,
even after ``kill -9``. A job's ``jobs`` row is its state for as long as nothing else needs
remembering: ``queued``, or ``delayed`` while its delay runs, before its first claim; ``running``
while a worker holds it (``receipt`` set: attempts are its ``received_count``, the start its
``received_ms``), or ``queued`` with that attempt counted once the lease ran out (its worker
died), as visibility expiry does on SQS. Neither a push nor a claim writes a row. One is written
(``sync`` copies the ``jobs`` row: payload, origin, attempt) only for what the queue row cannot
hold: the outcome (``succeeded``: an ``INSERT ... SELECT`` per acked batch, one per claim the
jobs came from, before their queue rows are deleted; ``dead``; ``cancelled``), a failed attempt's
error while the job waits for its retry, ``progress()`` and a cancel request of a running job,
and a job held back by a rate limit. A claim leaves a row that exists as it is, so the row may be
about an earlier attempt than the queue row: every read joins the two and takes the newer
(``_state``); a release (shutdown) moves such a row back to ``queued``.

``SqliteJobStore`` is the ``JobStore`` port over the same database (``jobs.get/cancel``, progress,
``qr jobs``). Its ``start``/``finish`` are the writes a consumer other than the engine's own worker
makes (the AWS adapter makes the same ones on DynamoDB; the shared contract tests drive both).

Rows expire ``keep_results`` seconds after the job finished: reads skip them and the engine
deletes them at most once a minute. A queue with ``keep_results = 0`` writes no state at all, and
its jobs read as unknown.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qr.runtime.ports import DEFAULT_KEEP_RESULTS, STATUSES, JobStart, JobState, JobStatus

FINAL = frozenset({"succeeded", "dead", "cancelled"})

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
    # a job's origin lives on its queue row until its state row is written (``sync``, the ack)
    "origin_kind": "TEXT",
    "origin_id": "TEXT",
}


def migrate(db: sqlite3.Connection) -> None:
    """Add the columns a database made by an older qr lacks (SQLite adds them in place). Its
    ``job_state`` rows of jobs not finished yet (older versions wrote one per push and per claim)
    stay valid: a read takes the newer of such a row and the queue row, and the ack updates it."""
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
    "j.visible_ms, 0, j.receipt IS NOT NULL, j.received_count, j.received_ms"
)
_FROM = "FROM job_state s LEFT JOIN jobs j ON j.seq = s.seq AND j.job_id = s.job_id"
_UNRECORDED = (
    "SELECT j.job_id, j.queue, NULL, j.received_count, j.user_id, NULL, NULL, NULL, NULL, 0, "
    "j.queued_ms, j.received_ms, NULL, j.seq, j.visible_ms, 1, j.receipt IS NOT NULL, "
    "j.received_count, j.received_ms "
    "FROM jobs j WHERE NOT EXISTS(SELECT 1 FROM job_state x WHERE x.job_id=j.job_id)"
)
"""Jobs with no state row: their ``jobs`` row says all there is (``_COLUMNS`` order)."""

_STARTED = (  # the later start: a row's own (JobStore.start) or its queue row's latest receive
    "CASE WHEN excluded.started_ms>COALESCE(started_ms, 0) THEN excluded.started_ms "
    "ELSE started_ms END"
)
_SYNC = (
    "INSERT INTO job_state(job_id, queue, seq, status, attempts, user_id, queued_ms, started_ms, "
    "keep_ms, body, content_type, group_id, origin_kind, origin_id) SELECT job_id, queue, seq, "
    "CASE WHEN receipt IS NOT NULL THEN 'running' WHEN visible_ms>? THEN 'delayed' "
    "ELSE 'queued' END, received_count, user_id, queued_ms, received_ms, ?, body, content_type, "
    "group_id, origin_kind, origin_id FROM jobs WHERE {where} ON CONFLICT(job_id) DO UPDATE SET "
    "status=CASE WHEN excluded.attempts>attempts THEN excluded.status ELSE status END, "
    f"attempts=excluded.attempts, started_ms={_STARTED}, seq=excluded.seq "
    f"WHERE status NOT IN {_FINAL}"
)


def sync(
    db: sqlite3.Connection, now: int, keep_ms: int, *, seqs: Sequence[int] = (), queue: str = ""
) -> None:
    """Bring the rows of jobs in the queue (``seqs``, or every job of ``queue``) up to their
    ``jobs`` rows before an operation records something about them: a job without a row gets
    one (payload and origin included); a row about an earlier attempt moves to the latest
    receive (``running``, its attempt and start). Final rows are left as they are."""
    where, values = (
        (f"seq IN ({','.join('?' * len(seqs))})", list(seqs)) if seqs else ("queue=?", [queue])
    )
    db.execute(_SYNC.format(where=where), (now, keep_ms, *values))


AckRow = tuple[int, str, int, str | None, float | None, str | None]
"""``(seq, receipt, keep_ms, result JSON, progress, progress message)`` of a job being acked."""

_OUTCOME_COLUMNS = (
    "job_id, queue, seq, status, attempts, user_id, result, progress, progress_message, "
    "queued_ms, started_ms, finished_ms, keep_ms, expires_ms, body, content_type, group_id, "
    "origin_kind, origin_id"
)
_ON_OUTCOME = (  # a row an earlier attempt (or an older qr's claim) made
    "ON CONFLICT(job_id) DO UPDATE SET status='succeeded', attempts=excluded.attempts, "
    f"started_ms={_STARTED}, finished_ms=excluded.finished_ms, "
    "expires_ms=excluded.finished_ms+keep_ms, seq=excluded.seq, "
    "result=COALESCE(excluded.result, result), progress=COALESCE(excluded.progress, progress), "
    "progress_message=CASE WHEN excluded.progress IS NULL THEN progress_message "
    f"ELSE excluded.progress_message END WHERE status NOT IN {_FINAL}"
)
_PLAIN = (
    f"INSERT INTO job_state({_OUTCOME_COLUMNS}) SELECT job_id, queue, seq, 'succeeded', "
    "received_count, user_id, NULL, NULL, NULL, queued_ms, received_ms, ?, ?, ?, body, "
    "content_type, group_id, origin_kind, origin_id FROM jobs WHERE receipt=? AND seq IN ({seqs}) "
    f"{_ON_OUTCOME}"
)
_REPORTED = (
    "WITH v(seq, receipt, keep, result, progress, message) AS (VALUES {values}) "
    f"INSERT INTO job_state({_OUTCOME_COLUMNS}) SELECT j.job_id, j.queue, j.seq, 'succeeded', "
    "j.received_count, j.user_id, v.result, v.progress, v.message, j.queued_ms, j.received_ms, "
    "?, v.keep, ?+v.keep, j.body, j.content_type, j.group_id, j.origin_kind, j.origin_id "
    f"FROM v JOIN jobs j ON j.seq=v.seq AND j.receipt=v.receipt WHERE 1 {_ON_OUTCOME}"
)
_CHUNK = 500  # rows per statement: at most 3,000 parameters, far below SQLite's limit


def succeeded(db: sqlite3.Connection, jobs: Sequence[AckRow], now: int) -> None:
    """The outcome rows of acked jobs still held (their receipt), made from their ``jobs`` rows
    before those are deleted: one ``INSERT ... SELECT`` per claim the jobs came from (the common
    ack: no result, no unwritten progress) and one for all jobs with a result or a last progress
    report. No history entry: the row itself is the last attempt (``detail``)."""
    plain: dict[tuple[str, int], list[int]] = {}
    reported: list[AckRow] = []
    for job in jobs:
        seq, receipt, keep, result, progress, _ = job
        if result is None and progress is None:
            plain.setdefault((receipt, keep), []).append(seq)
        else:
            reported.append(job)
    for (receipt, keep), seqs in plain.items():
        for start in range(0, len(seqs), _CHUNK):
            chunk = seqs[start : start + _CHUNK]
            db.execute(
                _PLAIN.format(seqs=",".join("?" * len(chunk))),
                (now, keep, now + keep, receipt, *chunk),
            )
    for start in range(0, len(reported), _CHUNK):
        rows = reported[start : start + _CHUNK]
        db.execute(
            _REPORTED.format(values=",".join(["(?,?,?,?,?,?)"] * len(rows))),
            (*(value for row in rows for value in row), now, now),
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
    if row is None:  # no row: its queue row has all there is (a scan, see ``read``)
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
        f"(s.expires_ms IS NULL OR s.expires_ms>=?2) UNION ALL {_UNRECORDED} AND j.origin_id=?1) "
        "ORDER BY 11, 1",
        (origin_id, now),
    )
    return [
        state
        for row in rows
        if not (row[15] and row[1] in stateless) and (state := _state(row, now)) is not None
    ]


def released(db: sqlite3.Connection, job_id: str, attempts: int) -> None:
    """Given back unfinished (shutdown): queued again with the receives its queue row counts.
    Only a row an earlier attempt left needs it (without one, the queue row says so)."""
    db.execute(
        f"UPDATE job_state SET status='queued', attempts=? WHERE job_id=? AND status NOT IN {_FINAL}",
        (attempts, job_id),
    )


def cancel_flag(db: sqlite3.Connection, job_id: str) -> bool:
    row = db.execute("SELECT cancel FROM job_state WHERE job_id=?", (job_id,)).fetchone()
    return bool(row and row[0])


def sweep(db: sqlite3.Connection, now: int) -> None:
    db.execute("DELETE FROM job_state WHERE expires_ms<?", (now,))


def read(
    db: sqlite3.Connection, job_id: str, now: int, stateless: frozenset[str] = frozenset()
) -> JobState | None:
    row = db.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE s.job_id=?1 AND (s.expires_ms IS NULL OR "
        f"s.expires_ms>=?2) UNION ALL {_UNRECORDED} AND j.job_id=?1",
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
        f"SELECT * FROM (SELECT {_COLUMNS} {_FROM} WHERE {kept} UNION ALL {_UNRECORDED}{waiting}) "
        "ORDER BY 11 DESC, 1 DESC",
        (queue, now),
    )
    found: list[JobState] = []
    for row in rows:  # the status shown may be derived, so filter after reading
        if row[15] and row[1] in stateless:
            continue  # a job of a queue that keeps no state
        state = _state(row, now)
        if state is not None and (status is None or state.status == status):
            found.append(state)
            if len(found) >= limit:
                break
    return found


def _state(row: tuple[Any, ...], now: int) -> JobState | None:
    (job_id, queue, status, attempts, user_id, result, error, progress, message, cancel) = row[:10]
    queued_ms, started_ms, finished_ms, seq, visible_ms, bare, held, received, received_ms = row[
        10:19
    ]
    if bare or (held and status not in FINAL and received > attempts):
        # no row, or one about an earlier attempt: the queue row is the latest word (a claim
        # writes no state); a lease that ran out (its worker died) reads queued with that
        # attempt counted, as on SQS, and so does a delay that is over
        attempts, started_ms = received, received_ms
        status = ("running" if held else "delayed") if visible_ms > now else "queued"
    elif (
        status in ("running", "delayed")
        and seq is not None
        and (visible_ms is None or visible_ms <= now)
    ):
        status = "queued"  # the same, for a row about the attempt the queue row is at
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
