"""The local queue engine: SQS semantics on one SQLite database in WAL mode.

All queue state lives in ``.qr/dev/queues.db``; nothing that matters is kept in Python memory, so
a crash (even ``kill -9``) leaves a state SQS itself could be in, and a second process (the
``qr dev queue`` command) sees the same truth. Every operation is one short ``BEGIN IMMEDIATE``
transaction; ``synchronous=NORMAL`` survives an application crash (``durable=True`` selects
``FULL`` for power loss as well).

Locks are deadlines. A job row carries ``visible_ms``: the delay or backoff deadline while it
waits, the lease deadline while a worker holds it (``receipt`` set). "In flight" therefore means
``receipt IS NOT NULL AND visible_ms > now``; when a worker dies its leases simply run out.

Tables:

* ``jobs`` — one row per live job; ``seq`` (the rowid) is the push order and, on FIFO queues, the
  sequence number. SQLite may reuse the rowid of a deleted last row, so a FIFO push takes
  ``max(every seq in jobs, the queue's last number in sequences) + 1`` instead: numbers only grow
  within a queue (hence within each group). AUTOINCREMENT would do that for every push at the
  price of one more page written per commit, which halved push throughput. Index
  ``(queue, visible_ms, seq)`` serves standard claims.
* ``groups`` — FIFO only: one row per non-empty group with its head (lowest ``seq``) and that head's
  ``visible_ms``. A group is claimable when its head is visible; only the head is ever claimed, so
  one job per group is in flight, in order, and a failing head (in backoff) blocks only its group.
  It is kept in step with ``jobs`` inside the same transactions (a cache, never a lock).
* ``dedupe`` — FIFO dedupe ids (given, or SHA-256 of the body) with their job id and expiry,
  5 minutes after the push, kept after the job is deleted, as SQS does.
* ``dead`` — the dead-letter queues: a job that failed ``max_attempts`` receives moves here with
  its payload, receive count and last error. ``redrive`` pushes them back as new jobs.
* ``job_state`` — what can be followed about each job (status, attempts, result, error,
  progress), written in the same transactions as the queue tables (``qr.runtime.local.job_state``)
  when the ``jobs`` row cannot say it (an outcome, a failed attempt's error, progress, a cancel
  request): queued, delayed and running jobs are their ``jobs`` rows, so neither a push nor a
  claim writes a state row. Kept ``keep_results`` seconds after the job finished (per queue).
* ``debounced`` — each debounce key's latest job; a debounced push deletes the key's waiting job.
* ``buckets`` — rate-limit token buckets (``qr.runtime.local.flow``): a claim of a rate-limited
  queue takes a token per job in the same transaction; a job without one is postponed (a later
  ``visible_ms``), its receive not counted.

``push`` notifies in-process subscribers after COMMIT (the worker wakes at once); other processes'
writes show up in ``PRAGMA data_version``, which a worker polls cheaply while idle.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qr.runtime import chains
from qr.runtime.flow import RateLimit
from qr.runtime.jobs import backoff_delay
from qr.runtime.local import flow as local_flow
from qr.runtime.local import job_state
from qr.runtime.local.private import FILE_MODE, private_file
from qr.runtime.manifest import Backoff
from qr.runtime.ports import DEFAULT_KEEP_RESULTS, JobStart, JobState, JobStatus, OutgoingJob
from qr.runtime.queues import DEDUPE_WINDOW_SECONDS, MAX_VISIBILITY_SECONDS

DB_PATH = Path(".qr/dev/queues.db")
_SWEEP_EVERY_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  job_id TEXT NOT NULL,
  body TEXT NOT NULL,
  content_type TEXT NOT NULL,
  user_id TEXT,
  params TEXT,
  group_id TEXT,
  dedupe_id TEXT,
  queued_ms INTEGER NOT NULL,
  visible_ms INTEGER NOT NULL,
  received_count INTEGER NOT NULL DEFAULT 0,
  receipt TEXT,
  received_ms INTEGER,
  last_error TEXT,
  origin_kind TEXT,
  origin_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(queue, visible_ms, seq);
CREATE INDEX IF NOT EXISTS jobs_group ON jobs(queue, group_id, seq) WHERE group_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS groups(
  queue TEXT NOT NULL,
  group_id TEXT NOT NULL,
  head_seq INTEGER NOT NULL,
  visible_ms INTEGER NOT NULL,
  PRIMARY KEY(queue, group_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS groups_ready ON groups(queue, head_seq);
CREATE TABLE IF NOT EXISTS sequences(
  queue TEXT PRIMARY KEY,
  last INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe(
  queue TEXT NOT NULL,
  dedupe_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  sequence_number INTEGER,
  expires_ms INTEGER NOT NULL,
  PRIMARY KEY(queue, dedupe_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  job_id TEXT NOT NULL,
  body TEXT NOT NULL,
  content_type TEXT NOT NULL,
  user_id TEXT,
  params TEXT,
  group_id TEXT,
  sequence_number INTEGER,
  queued_ms INTEGER NOT NULL,
  received_count INTEGER NOT NULL,
  last_error TEXT,
  dead_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_queue ON dead(queue, seq);
"""

_KEEP_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS queue_keep(queue TEXT PRIMARY KEY, seconds REAL NOT NULL) "
    "WITHOUT ROWID"
)
_JOB_COLUMNS = (
    "seq, job_id, queue, body, content_type, user_id, params, group_id, queued_ms, "
    "received_count, receipt, received_ms, visible_ms"
)
_DEAD_COLUMNS = "seq, job_id, queue, body, content_type, user_id, params, group_id"
EXPIRED_ERROR = "the job's lease ran out (its worker stopped or crashed before finishing)"


class LeaseError(ValueError):
    """An operation on a job the caller no longer holds, or past the SQS visibility limit."""


@dataclass(frozen=True)
class PushResult:
    job_id: str
    sequence_number: int | None
    duplicate: bool = False


@dataclass(frozen=True)
class Claimed:
    """A job a worker holds until ``lease_ms`` (or it acks, fails, releases)."""

    seq: int
    receipt: str
    job_id: str
    queue: str
    body: str
    content_type: str
    user_id: str | None
    params: dict[str, str]
    group_id: str | None
    queued_ms: int
    received_count: int
    received_ms: int
    lease_ms: int

    @property
    def fifo(self) -> bool:
        return self.queue.endswith(".fifo")

    @property
    def sequence_number(self) -> int | None:
        return self.seq if self.fifo else None


@dataclass(frozen=True)
class DeadJob:
    job_id: str
    queue: str
    body: str
    content_type: str
    group_id: str | None
    received_count: int
    last_error: str | None
    queued_ms: int
    dead_ms: int


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    """Jobs visible now (waiting to run)."""
    in_flight: int
    delayed: int
    """Jobs waiting for their delay or retry backoff."""
    dead: int

    def to_dict(self) -> dict[str, object]:
        return {
            "queue": self.queue,
            "depth": self.depth,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "dead": self.dead,
        }


@dataclass
class _Sweeps:
    dedupe_ms: int = 0
    results_ms: int = 0


FailOutcome = Literal["retry", "dead", "stale", "cancelled"]


@dataclass
class Engine:
    """One connection to the queue database; thread-safe (one lock around each transaction)."""

    path: Path
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    durable: bool = False
    keep_results: dict[str, float] = field(default_factory=dict)
    """Seconds to keep each queue's job state (``config["keep_results"]``; 0: none). Queues not
    listed take what the last ``configure_keep`` stored in the database (so ``qr dev queue``,
    which loads no handler, follows the running server's settings), else the default day."""
    _db: sqlite3.Connection = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _subscribers: list[Callable[[str], None]] = field(init=False, default_factory=list)
    _sweeps: _Sweeps = field(init=False, default_factory=_Sweeps)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        # Payloads and results are the user's data: 0600 (SQLite gives its -wal and -shm files
        # the database file's mode), in a 0700 folder.
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            journal = self.path.with_name(self.path.name + suffix)
            if journal.exists():
                journal.chmod(FILE_MODE)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        db.execute("PRAGMA busy_timeout=30000")
        self._db = db
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(job_state.SCHEMA)
            db.execute(_KEEP_SCHEMA)
            for queue, seconds in db.execute("SELECT queue, seconds FROM queue_keep"):
                self.keep_results.setdefault(queue, float(seconds))
            for statement in local_flow.SCHEMA:
                db.execute(statement)
            job_state.migrate(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing --------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def configure_keep(self, keep: dict[str, float]) -> None:
        """Set and store each queue's ``keep_results`` (the worker does, from the manifest)."""
        self.keep_results.update(keep)
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO queue_keep VALUES(?,?)", list(keep.items()))

    def keep_ms(self, queue: str) -> int:
        return int(self.keep_results.get(queue, DEFAULT_KEEP_RESULTS) * 1000)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(queue)`` after each push commits; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def data_version(self) -> int:
        """Changes when another connection (another process) commits to the database."""
        with self._lock:
            row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    # -- producer ----------------------------------------------------------------------------

    def push(self, job: OutgoingJob, *, origin: tuple[str, str] | None = None) -> PushResult:
        """Enqueue; a FIFO duplicate within 5 minutes returns the original job's id. ``origin``:
        ``(kind, id)`` of the request, job, socket message or schedule run that pushed it."""
        fifo = job.queue.endswith(".fifo")
        if fifo and job.group_id is None:
            raise ValueError(f"FIFO queue {job.queue!r} needs a group id")
        if fifo and job.delay:
            raise ValueError(f"FIFO queue {job.queue!r} takes no per-job delay")
        with self._transaction() as db:
            result = self._insert(db, job, self.now_ms(), origin)
        if not result.duplicate:
            for callback in list(self._subscribers):
                callback(job.queue)
        return result

    def push_steps(self, job_id: str, jobs: Sequence[OutgoingJob]) -> list[str]:
        """Push a finished job's next steps, each once per (job id, index), in one transaction
        (``qr.runtime.chains``): a job run again gets the ids pushed the first time."""
        ids: list[str] = []
        with self._transaction() as db:
            now = self.now_ms()
            for index, job in enumerate(jobs):
                key = chains.step_key(job_id, index)
                row = db.execute("SELECT pushed FROM steps WHERE key=?", (key,)).fetchone()
                if row is None:
                    pushed = self._insert(db, job, now, ("job", job_id)).job_id
                    db.execute("INSERT INTO steps VALUES(?,?,?)", (key, pushed, now))
                    row = (pushed,)
                ids.append(str(row[0]))
        for queue in dict.fromkeys(job.queue for job in jobs):
            for callback in list(self._subscribers):
                callback(queue)
        return ids

    def _insert(
        self,
        db: sqlite3.Connection,
        job: OutgoingJob,
        now: int,
        origin: tuple[str, str] | None = None,
    ) -> PushResult:
        fifo = job.queue.endswith(".fifo")
        params = json.dumps(job.params, separators=(",", ":")) if job.params else None
        dedupe_id = None
        if fifo:
            dedupe_id = job.dedupe_id or hashlib.sha256(job.body.encode()).hexdigest()
            row = db.execute(
                "SELECT job_id, sequence_number, expires_ms FROM dedupe "
                "WHERE queue=? AND dedupe_id=?",
                (job.queue, dedupe_id),
            ).fetchone()
            if row is not None and row[2] > now:
                return PushResult(row[0], row[1], duplicate=True)
            self._sweep_dedupe(db, now)
        job_id = time_ordered_id(now, self.random)
        visible = now + int(job.delay * 1000)
        if job.debounce_key is not None:
            keep = self.keep_ms(job.queue)
            pending = local_flow.pending(db, job.queue, job.debounce_key)
            if keep and pending is not None:  # it may have no row yet
                job_state.sync(db, now, keep, seqs=[pending])
            replaced = local_flow.supersede(db, job.queue, job.debounce_key, now)
            if replaced is not None and keep:
                job_state.finished(
                    db,
                    replaced,
                    "cancelled",
                    now,
                    error={"type": "Debounced", "message": "replaced by a later push"},
                )
        kind, origin_id = origin if origin is not None else (None, None)
        cursor = db.execute(
            "INSERT INTO jobs(seq, queue, job_id, body, content_type, user_id, params, group_id, "
            "dedupe_id, queued_ms, visible_ms, origin_kind, origin_id) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                _next_sequence(db, job.queue) if fifo else None,
                job.queue,
                job_id,
                job.body,
                job.content_type,
                job.user_id,
                params,
                job.group_id,
                dedupe_id,
                now,
                visible,
                kind,
                origin_id,
            ),
        )
        seq = int(cursor.lastrowid or 0)
        if job.debounce_key is not None:
            local_flow.remember(db, job.queue, job.debounce_key, seq, job_id)
        if fifo:
            db.execute(
                "INSERT OR REPLACE INTO dedupe VALUES(?,?,?,?,?)",
                (job.queue, dedupe_id, job_id, seq, now + DEDUPE_WINDOW_SECONDS * 1000),
            )
            db.execute(
                "INSERT OR IGNORE INTO groups VALUES(?,?,?,?)",
                (job.queue, job.group_id, seq, visible),
            )
        return PushResult(job_id, seq if fifo else None)

    # -- consumer ----------------------------------------------------------------------------

    def claim(
        self,
        queue: str,
        limit: int,
        lease: float,
        *,
        max_attempts: int = 3,
        rate_limit: RateLimit | None = None,
    ) -> list[Claimed]:
        """Receive up to ``limit`` jobs, each held for ``lease`` seconds.

        A visible job that has already been received ``max_attempts`` times (its last lease ran
        out) moves to the dead-letter queue instead of being delivered again. With a
        ``rate_limit``, a job whose bucket has no token is postponed instead (not received).
        """
        if limit <= 0:
            return []
        lease_ms = int(min(lease, MAX_VISIBILITY_SECONDS) * 1000)
        fifo = queue.endswith(".fifo")
        with self._transaction() as db:
            now = self.now_ms()
            claimed: list[Claimed] = []
            for _ in range(limit + 1):  # each round either claims or dead-letters
                want = limit - len(claimed)
                if want <= 0:
                    break
                if fifo:
                    rows = db.execute(
                        "SELECT head_seq FROM groups WHERE queue=? AND visible_ms<=? "
                        "ORDER BY head_seq LIMIT ?",
                        (queue, now, want),
                    ).fetchall()
                else:
                    rows = db.execute(
                        "SELECT seq FROM jobs WHERE queue=? AND visible_ms<=? "
                        "ORDER BY visible_ms, seq LIMIT ?",
                        (queue, now, want),
                    ).fetchall()
                if not rows:
                    break
                seqs = [r[0] for r in rows]
                spent = db.execute(
                    f"SELECT seq FROM jobs WHERE seq IN ({_marks(seqs)}) AND received_count>=?",
                    (*seqs, max_attempts),
                ).fetchall()
                if spent:
                    for (seq,) in spent:
                        self._bury(db, seq, EXPIRED_ERROR, now, keep_error=True)
                    continue
                if rate_limit is not None:
                    seqs, postponed = local_flow.admit(db, queue, seqs, rate_limit, now)
                    self._postpone(db, queue, postponed, now)
                    if not seqs:
                        continue
                receipt = uuid.uuid4().hex
                rows = db.execute(
                    "UPDATE jobs SET received_count=received_count+1, receipt=?, received_ms=?, "
                    f"visible_ms=? WHERE seq IN ({_marks(seqs)}) RETURNING {_JOB_COLUMNS}",
                    (receipt, now, now + lease_ms, *seqs),
                ).fetchall()
                batch = sorted((_claimed(r) for r in rows), key=lambda c: c.seq)
                if fifo:
                    db.executemany(
                        "UPDATE groups SET visible_ms=? WHERE queue=? AND group_id=?",
                        [(now + lease_ms, queue, c.group_id) for c in batch],
                    )
                claimed.extend(batch)
        return claimed

    def ack(
        self, job: Claimed, result: Any = None, progress: tuple[float, str | None] | None = None
    ) -> bool:
        """Delete a finished job (and keep its result); ``False`` if the lease was lost."""
        return self.ack_many([(job, result)], {job.job_id: progress} if progress else None) == [
            True
        ]

    def ack_many(
        self,
        finished: Sequence[tuple[Claimed, Any]],
        progress: dict[str, tuple[float, str | None]] | None = None,
    ) -> list[bool]:
        """Delete several finished jobs in one transaction; for each, whether it was still held.

        ``progress``: the last ``job.progress()`` value of jobs whose last report was not
        written yet (it lands with the outcome)."""
        if not finished:
            return []
        done: list[bool] = []
        outcomes: list[job_state.AckRow] = []
        for job, result in finished:
            keep = self.keep_ms(job.queue)
            if keep:
                value, message = (progress or {}).get(job.job_id) or (None, None)
                json_result = None if result is None else _result_json(result)
                outcomes.append((job.seq, job.receipt, keep, json_result, value, message))
        with self._transaction() as db:
            now = self.now_ms()
            if outcomes:  # the rows of jobs still held, from their queue rows before they go
                job_state.succeeded(db, outcomes, now)
            for job, _ in finished:
                cursor = db.execute(
                    "DELETE FROM jobs WHERE seq=? AND receipt=?", (job.seq, job.receipt)
                )
                done.append(cursor.rowcount == 1)
                if done[-1] and job.group_id is not None and job.fifo:
                    self._advance_group(db, job.queue, job.group_id)
            if now - self._sweeps.results_ms > _SWEEP_EVERY_MS:
                self._sweeps.results_ms = now
                job_state.sweep(db, now)
                local_flow.sweep(db, now)
        return done

    def fail(
        self,
        job: Claimed,
        error: str,
        *,
        max_attempts: int,
        backoff: Backoff,
        error_info: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
        recorded: bool = False,
    ) -> FailOutcome:
        """Record a failure: back to the queue after the backoff, or to the DLQ when spent.

        A job that was asked to cancel (``cancel``) while it ran is not retried: it ends
        ``cancelled``. ``error_info`` is the error as the job state shows it (type, message,
        traceback); ``error`` the text kept with the dead letter. ``recorded``: the consumer
        has already recorded this attempt's failure in the job state (``JobStore.finish``, the
        function's own under ``qr dev --docker``), so a retry moves only the queue."""
        info = error_info or {"type": "Error", "message": error}
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "SELECT received_count FROM jobs WHERE seq=? AND receipt=?",
                (job.seq, job.receipt),
            ).fetchone()
            if row is None:
                return "stale"
            keep = self.keep_ms(job.queue)
            if keep:  # its row (if any) may be about an earlier attempt
                job_state.sync(db, now, keep, seqs=[job.seq])
            if keep and job_state.cancel_flag(db, job.job_id):
                self._delete(db, job.seq, job.queue, job.group_id)
                job_state.finished(db, job.job_id, "cancelled", now, error=info, progress=progress)
                return "cancelled"
            if row[0] >= max_attempts:
                self._bury(db, job.seq, error, now, info=info, progress=progress)
                return "dead"
            visible = now + int(backoff_delay(backoff, row[0], self.random) * 1000)
            db.execute(
                "UPDATE jobs SET visible_ms=?, receipt=NULL, last_error=? WHERE seq=?",
                (visible, error, job.seq),
            )
            if keep and not recorded:
                job_state.finished(db, job.job_id, "failed", now, error=info, progress=progress)
            if job.fifo and job.group_id is not None:
                self._set_group_visible(db, job.queue, job.group_id, job.seq, visible)
            return "retry"

    def bury(
        self,
        job: Claimed,
        error: str,
        *,
        info: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> bool:
        """Move a held job straight to the dead-letter queue (a payload that cannot validate:
        retrying would not help); ``False`` if the lease was lost."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT 1 FROM jobs WHERE seq=? AND receipt=?", (job.seq, job.receipt)
            ).fetchone()
            if row is None:
                return False
            self._bury(db, job.seq, error, self.now_ms(), info=info, progress=progress)
            return True

    def release(self, job: Claimed, *, count: bool = False) -> bool:
        """Give a job back unfinished (graceful shutdown): visible now. The receive is not counted
        unless ``count`` (the handler ran: as on SQS, where its visibility timeout would run out)."""
        uncount = 0 if count else 1
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "UPDATE jobs SET visible_ms=?, receipt=NULL, "
                "received_count=MAX(received_count-?, 0) WHERE seq=? AND receipt=? "
                "RETURNING received_count",
                (now, uncount, job.seq, job.receipt),
            ).fetchone()
            if row is not None and job.fifo and job.group_id is not None:
                self._set_group_visible(db, job.queue, job.group_id, job.seq, now)
            if row is not None and self.keep_ms(job.queue):
                job_state.released(db, job.job_id, row[0])
            return row is not None

    def extend(self, job: Claimed, seconds: float) -> int:
        """Hold the job until ``seconds`` from now (never shorter); returns the new lease end."""
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "SELECT visible_ms, received_ms FROM jobs WHERE seq=? AND receipt=?",
                (job.seq, job.receipt),
            ).fetchone()
            if row is None or row[0] <= now:
                raise LeaseError(f"job {job.job_id} is no longer held by this worker")
            until = int(max(row[0], now + int(seconds * 1000)))
            if until > row[1] + MAX_VISIBILITY_SECONDS * 1000:
                raise LeaseError(
                    f"job {job.job_id} cannot be held past 12 hours after it was received"
                )
            db.execute("UPDATE jobs SET visible_ms=? WHERE seq=?", (until, job.seq))
            if job.fifo and job.group_id is not None:
                self._set_group_visible(db, job.queue, job.group_id, job.seq, until)
            return until

    # -- dead letters, stats -------------------------------------------------------------------

    def redrive(self, queue: str) -> int:
        """Move the queue's dead jobs back as new jobs (new ids, pushed now), in their order."""
        with self._transaction() as db:
            now = self.now_ms()
            rows = db.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead WHERE queue=? ORDER BY seq", (queue,)
            ).fetchall()
            for row in rows:
                self._requeue_dead(db, row, now)
        if rows:
            for callback in list(self._subscribers):
                callback(queue)
        return len(rows)

    def _requeue_dead(self, db: sqlite3.Connection, row: tuple[Any, ...], now: int) -> str:
        """A dead job (``_DEAD_COLUMNS``) back onto its queue as a new job, followable like a
        pushed one (``jobs.get``, the dashboard); returns its new id."""
        dead_seq, dead_id, queue, body, content_type, user_id, params, group_id = row
        fifo = queue.endswith(".fifo")
        new_id = time_ordered_id(now, self.random)
        cursor = db.execute(
            "INSERT INTO jobs(seq, queue, job_id, body, content_type, user_id, params, "
            "group_id, queued_ms, visible_ms, origin_kind, origin_id) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,'retry',?)",
            (
                _next_sequence(db, queue) if fifo else None,
                queue,
                new_id,
                body,
                content_type,
                user_id,
                params,
                group_id,
                now,
                now,
                dead_id,
            ),
        )
        seq = int(cursor.lastrowid or 0)
        if fifo and group_id is not None:
            db.execute("INSERT OR IGNORE INTO groups VALUES(?,?,?,?)", (queue, group_id, seq, now))
        db.execute("DELETE FROM dead WHERE seq=?", (dead_seq,))
        return new_id

    def purge(self, queue: str, *, dead: bool = False) -> int:
        """Delete every job of ``queue`` (SQS ``PurgeQueue``: waiting, delayed and in flight), or of
        its dead-letter queue with ``dead=True``; returns how many. Purged jobs that were never
        finished are recorded as ``cancelled``; a handler still running one cannot ack it (its
        lease is gone, as with a purged SQS receipt handle). Dedupe ids stay remembered for their
        5 minutes, as SQS keeps them."""
        with self._transaction() as db:
            now = self.now_ms()
            if dead:
                return db.execute("DELETE FROM dead WHERE queue=?", (queue,)).rowcount
            ids = [row[0] for row in db.execute("SELECT job_id FROM jobs WHERE queue=?", (queue,))]
            keep = self.keep_ms(queue)
            if keep:  # jobs without a row get theirs, to end cancelled
                job_state.sync(db, now, keep, queue=queue)
            db.execute("DELETE FROM groups WHERE queue=?", (queue,))
            db.execute("DELETE FROM jobs WHERE queue=?", (queue,))
            error = {"type": "Purged", "message": f"the queue {queue} was purged"}
            for job_id in ids:
                job_state.finished(db, job_id, "cancelled", now, error=error)
            return len(ids)

    def promote(self, job_id: str) -> bool:
        """Make a waiting job (delayed, or in its retry backoff) visible now; ``False`` when the
        job is not waiting (unknown, running, or already visible)."""
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "SELECT seq, queue, group_id FROM jobs WHERE job_id=? AND receipt IS NULL "
                "AND visible_ms>?",
                (job_id, now),
            ).fetchone()
            if row is None:
                return False
            seq, queue, group_id = row
            db.execute("UPDATE jobs SET visible_ms=? WHERE seq=?", (now, seq))
            if queue.endswith(".fifo") and group_id is not None:
                self._set_group_visible(db, queue, group_id, seq, now)
        for callback in list(self._subscribers):
            callback(queue)
        return True

    def retry(self, job_id: str) -> str | None:
        """Run a failed job again now: a dead one goes back onto its queue as a new job (its new
        id is returned, the way ``redrive`` moves them all); one waiting out its retry backoff is
        promoted (its own id is returned). ``None``: the job is neither."""
        if self.promote(job_id):
            return job_id
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead WHERE job_id=? ORDER BY seq DESC LIMIT 1",
                (job_id,),
            ).fetchone()
            if row is None:
                return None
            new_id = self._requeue_dead(db, row, self.now_ms())
        for callback in list(self._subscribers):
            callback(row[2])
        return new_id

    def replay(self, job_id: str) -> str | None:
        """Push the job's payload again as a new job (any status, e.g. a succeeded one); returns
        the new id, ``None`` when the payload is not known (unknown id, or no state kept)."""
        with self._lock:
            row = job_state.payload(self._db, job_id)
        if row is None:
            return None
        queue, body, content_type, group_id, user_id = row
        job = OutgoingJob(
            queue,
            body,
            content_type,
            group_id=group_id,
            # a FIFO queue would drop the same body within 5 minutes as a duplicate
            dedupe_id=str(uuid.uuid4()) if queue.endswith(".fifo") else None,
            user_id=user_id,
        )
        return self.push(job, origin=("replay", job_id)).job_id

    def job_detail(self, job_id: str) -> dict[str, Any] | None:
        """Payload, attempts (latest first) and origin of a job (the dashboard's job page)."""
        with self._lock:
            return job_state.detail(self._db, job_id)

    def pushed_by(self, origin_id: str) -> list[JobState]:
        """The jobs a request, job, socket message or schedule run pushed (oldest first)."""
        with self._lock:
            return job_state.pushed_by(self._db, origin_id, self.now_ms(), self._stateless())

    def dead_jobs(self, queue: str) -> list[DeadJob]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, queue, body, content_type, group_id, received_count, last_error, "
                "queued_ms, dead_ms FROM dead WHERE queue=? ORDER BY seq",
                (queue,),
            ).fetchall()
        return [DeadJob(*row) for row in rows]

    def result(self, job_id: str) -> Any:
        """What the job's handler returned (``None`` if nothing was kept)."""
        state = self.job_state(job_id)
        return None if state is None else state.result

    # -- job state (the JobStore port: qr.runtime.local.job_state.SqliteJobStore) ----------------

    def job_state(self, job_id: str) -> JobState | None:
        with self._lock:
            now = self.now_ms()
            state = job_state.read(self._db, job_id, now, self._stateless())
        return state

    def job_states(
        self, *, queue: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[JobState]:
        with self._lock:
            return job_state.listing(
                self._db, self.now_ms(), queue, status, limit, self._stateless()
            )

    def _stateless(self) -> frozenset[str]:
        """Queues that keep no job state (``keep_results = 0``): their waiting jobs are unknown."""
        return frozenset(q for q, seconds in self.keep_results.items() if not seconds)

    def cancel(self, job_id: str) -> JobState | None:
        """A job that is not running is removed from its queue and ends ``cancelled``; a running
        one is asked to stop (``job.cancelled``); a finished one is left alone."""
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "SELECT j.seq, j.queue, j.group_id, j.receipt, j.visible_ms FROM job_state s "
                "JOIN jobs j ON j.seq=s.seq AND j.job_id=s.job_id WHERE s.job_id=?",
                (job_id,),
            ).fetchone()
            if row is None:  # no state kept (keep_results=0), or no longer in the queue
                row = db.execute(
                    "SELECT seq, queue, group_id, receipt, visible_ms FROM jobs WHERE job_id=?",
                    (job_id,),
                ).fetchone()
            if row is not None:
                seq, queue, group_id, receipt, visible_ms = row
                keep = self.keep_ms(queue)
                if keep:  # it may have no row yet, or one about an earlier attempt
                    job_state.sync(db, now, keep, seqs=[seq])
                if receipt is not None and visible_ms > now:
                    db.execute("UPDATE job_state SET cancel=1 WHERE job_id=?", (job_id,))
                else:
                    self._delete(db, seq, queue, group_id)
                    job_state.finished(db, job_id, "cancelled", now)
            else:  # a job some other consumer runs (JobStore.start), or a finished one
                db.execute(
                    "UPDATE job_state SET cancel=1 WHERE job_id=? AND status='running'", (job_id,)
                )
                if db.execute(
                    "SELECT 1 FROM job_state WHERE job_id=? AND status IN "
                    "('queued','delayed','failed')",
                    (job_id,),
                ).fetchone():
                    job_state.finished(db, job_id, "cancelled", now)
            return job_state.read(db, job_id, now, self._stateless())

    def progress(self, job_id: str, value: float, message: str | None) -> bool:
        """Record a running job's progress; returns whether it was asked to cancel. Its first
        report makes its row (a claim writes none)."""
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute("SELECT seq FROM job_state WHERE job_id=?", (job_id,)).fetchone()
            if row is None:  # a scan of the queue rows (no index on job_id), once per run
                held = db.execute(
                    "SELECT seq, queue FROM jobs WHERE job_id=? AND receipt IS NOT NULL", (job_id,)
                ).fetchone()
            else:
                held = db.execute(
                    "SELECT seq, queue FROM jobs WHERE seq=? AND job_id=? AND receipt IS NOT NULL",
                    (row[0], job_id),
                ).fetchone()
            if held is not None and (keep := self.keep_ms(held[1])):
                job_state.sync(db, now, keep, seqs=[held[0]])
            row = db.execute(
                "UPDATE job_state SET progress=?, progress_message=? "
                "WHERE job_id=? AND status='running' RETURNING cancel",
                (value, message, job_id),
            ).fetchone()
        return bool(row and row[0])

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            return job_state.cancel_flag(self._db, job_id)

    def record_start(self, job: JobStart) -> bool:
        """``JobStore.start`` for a consumer other than this engine's worker."""
        with self._transaction() as db:
            now = self.now_ms()
            row = db.execute(
                "SELECT status FROM job_state WHERE job_id=?", (job.job_id,)
            ).fetchone()
            if row is not None and row[0] in job_state.FINAL:
                return False
            if row is None:  # the engine's queue row gives it payload, origin and place
                held = db.execute(  # a scan (no index on job_id): qr dev --docker only
                    "SELECT seq FROM jobs WHERE job_id=?", (job.job_id,)
                ).fetchone()
                if held is not None:
                    job_state.sync(db, now, int(job.keep * 1000), seqs=[held[0]])
            db.execute(
                "INSERT INTO job_state(job_id, queue, status, attempts, user_id, queued_ms, "
                "started_ms, keep_ms) VALUES(?,?,'running',?,?,?,?,?) ON CONFLICT(job_id) DO "
                "UPDATE SET status='running', attempts=excluded.attempts, "
                "started_ms=excluded.started_ms",
                (
                    job.job_id,
                    job.queue,
                    job.attempt,
                    job.user,
                    int(job.queued_at * 1000),
                    now,
                    int(job.keep * 1000),
                ),
            )
            return True

    def record_finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        keep: float = DEFAULT_KEEP_RESULTS,
        result: Any = None,
        error: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> bool:
        """``JobStore.finish`` for a consumer other than this engine's worker. ``keep`` counts
        from a final outcome; a ``failed`` one (it will retry) leaves the retention as it was,
        as on DynamoDB, where it sets no TTL."""
        with self._transaction() as db:
            return job_state.finished(
                db,
                job_id,
                status,
                self.now_ms(),
                result=None if result is None else _result_json(result),
                error=error,
                progress=progress,
                keep_ms=None if status == "failed" else int(keep * 1000),
            )

    def finished_per_queue(self, since: float) -> dict[str, int]:
        """Jobs per queue whose final attempt ended since ``since`` (epoch seconds): the
        dashboard's jobs per second over the last minute."""
        with self._lock:
            rows = self._db.execute(
                "SELECT queue, COUNT(*) FROM job_state WHERE finished_ms>=? GROUP BY queue",
                (int(since * 1000),),
            ).fetchall()
        return {str(queue): int(count) for queue, count in rows}

    def stats(self, queues: Sequence[str] = ()) -> list[QueueStats]:
        """Depth, in flight, delayed and dead counts for ``queues`` plus any queue with jobs."""
        with self._lock:
            now = self.now_ms()
            live = self._db.execute(
                "SELECT queue, SUM(visible_ms<=?), SUM(receipt IS NOT NULL AND visible_ms>?), "
                "SUM(receipt IS NULL AND visible_ms>?) FROM jobs GROUP BY queue",
                (now, now, now),
            ).fetchall()
            dead = dict(
                self._db.execute("SELECT queue, COUNT(*) FROM dead GROUP BY queue").fetchall()
            )
        counts = {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in live}
        names = sorted(set(queues) | set(counts) | set(dead))
        return [
            QueueStats(name, *counts.get(name, (0, 0, 0)), int(dead.get(name, 0))) for name in names
        ]

    def next_visible_ms(self, queue: str) -> int | None:
        """When the next job of ``queue`` becomes claimable (None: the queue is empty)."""
        table = "groups" if queue.endswith(".fifo") else "jobs"
        with self._lock:
            row = self._db.execute(
                f"SELECT MIN(visible_ms) FROM {table} WHERE queue=?", (queue,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- helpers (inside a transaction) ---------------------------------------------------------

    def _bury(
        self,
        db: sqlite3.Connection,
        seq: int,
        error: str,
        now: int,
        *,
        keep_error: bool = False,
        info: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> None:
        row = db.execute(
            "SELECT queue, job_id, body, content_type, user_id, params, group_id, queued_ms, "
            "received_count, last_error FROM jobs WHERE seq=?",
            (seq,),
        ).fetchone()
        queue, job_id, body, content_type, user_id, params, group_id = row[:7]
        last_error = f"{error}; before that: {row[9]}" if keep_error and row[9] else error
        db.execute(
            "INSERT INTO dead(queue, job_id, body, content_type, user_id, params, group_id, "
            "sequence_number, queued_ms, received_count, last_error, dead_ms) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                queue,
                job_id,
                body,
                content_type,
                user_id,
                params,
                group_id,
                seq if queue.endswith(".fifo") else None,
                row[7],
                row[8],
                last_error,
                now,
            ),
        )
        keep = self.keep_ms(queue)
        if keep:  # its row, from the queue row, before that goes
            job_state.sync(db, now, keep, seqs=[seq])
        db.execute("DELETE FROM jobs WHERE seq=?", (seq,))
        if queue.endswith(".fifo") and group_id is not None:
            self._advance_group(db, queue, group_id)
        if keep:
            info = info or {"type": "LeaseExpired", "message": last_error}
            job_state.finished(db, job_id, "dead", now, error=info, progress=progress)

    def _delete(self, db: sqlite3.Connection, seq: int, queue: str, group_id: str | None) -> None:
        db.execute("DELETE FROM jobs WHERE seq=?", (seq,))
        if queue.endswith(".fifo") and group_id is not None:
            self._advance_group(db, queue, group_id)

    def _postpone(
        self, db: sqlite3.Connection, queue: str, jobs: list[tuple[int, int]], now: int
    ) -> None:
        """Make jobs visible later without receiving them (rate limits). They read ``queued``,
        not ``delayed``: a job without a row gets one saying so first."""
        keep = self.keep_ms(queue)
        if keep and jobs:
            job_state.sync(db, now, keep, seqs=[seq for seq, _ in jobs])
        for seq, visible in jobs:
            row = db.execute(
                "UPDATE jobs SET visible_ms=? WHERE seq=? RETURNING group_id", (visible, seq)
            ).fetchone()
            if queue.endswith(".fifo") and row is not None and row[0] is not None:
                self._set_group_visible(db, queue, row[0], seq, visible)

    def _advance_group(self, db: sqlite3.Connection, queue: str, group_id: str) -> None:
        head = db.execute(
            "SELECT seq, visible_ms FROM jobs WHERE queue=? AND group_id=? ORDER BY seq LIMIT 1",
            (queue, group_id),
        ).fetchone()
        if head is None:
            db.execute("DELETE FROM groups WHERE queue=? AND group_id=?", (queue, group_id))
        else:
            db.execute(
                "UPDATE groups SET head_seq=?, visible_ms=? WHERE queue=? AND group_id=?",
                (head[0], head[1], queue, group_id),
            )

    def _set_group_visible(
        self, db: sqlite3.Connection, queue: str, group_id: str, seq: int, visible: int
    ) -> None:
        db.execute(
            "UPDATE groups SET visible_ms=? WHERE queue=? AND group_id=? AND head_seq=?",
            (visible, queue, group_id, seq),
        )

    def _sweep_dedupe(self, db: sqlite3.Connection, now: int) -> None:
        if now - self._sweeps.dedupe_ms > _SWEEP_EVERY_MS:
            self._sweeps.dedupe_ms = now
            db.execute("DELETE FROM dedupe WHERE expires_ms<=?", (now,))


def time_ordered_id(now_ms: int, rand: Callable[[], float] = random.random) -> str:
    """A job id in UUID version 7 layout: 48 bits of milliseconds, then random bits.

    Ids of jobs pushed one after another sort next to each other, so the ``job_state`` rows a
    transaction writes share B-tree pages (random uuid4 keys touched a page per job, which made
    keeping state cost half the engine's throughput). ``rand`` is the engine's random source."""
    bits = int(rand() * (1 << 62)) ^ uuid.uuid4().int & ((1 << 74) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (bits >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | bits & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def _next_sequence(db: sqlite3.Connection, queue: str) -> int:
    """A FIFO sequence number above every rowid in ``jobs`` and every number ``queue`` issued."""
    top = db.execute("SELECT MAX(seq) FROM jobs").fetchone()[0] or 0
    row = db.execute("SELECT last FROM sequences WHERE queue=?", (queue,)).fetchone()
    number = max(top, row[0] if row else 0) + 1
    db.execute("INSERT OR REPLACE INTO sequences VALUES(?,?)", (queue, number))
    return int(number)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _claimed(row: tuple[Any, ...]) -> Claimed:
    (seq, job_id, queue, body, content_type, user_id, params, group_id, queued_ms, count) = row[:10]
    receipt, received_ms, visible_ms = row[10:13]
    return Claimed(
        seq,
        receipt,
        job_id,
        queue,
        body,
        content_type,
        user_id,
        json.loads(params) if params else {},
        group_id,
        queued_ms,
        count,
        received_ms,
        visible_ms,
    )


def _result_json(result: Any) -> str:
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return json.dumps(repr(result))
