"""Job state in the engine's own transactions: every queue step moves the state with it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from qr.runtime.flow import RateLimit
from qr.runtime.local import job_state
from qr.runtime.local.engine import EXPIRED_ERROR, Engine
from qr.runtime.manifest import Backoff
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import JSON
from tests.unit.test_local_engine import Clock

NO_WAIT = Backoff("fixed", 0, 0, jitter=False)
LATER = Backoff("fixed", 60, 60, jitter=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Engine:
    return Engine(tmp_path / "queues.db", clock=clock, random=lambda: 1.0)


def push(engine: Engine, queue: str = "q", **kw: object) -> str:
    return engine.push(OutgoingJob(queue, "{}", JSON, **kw)).job_id  # type: ignore[arg-type]


def status(engine: Engine, job_id: str) -> tuple[str, int] | None:
    state = engine.job_state(job_id)
    return None if state is None else (state.status, state.attempts)


def test_push_claim_ack_move_the_state(engine: Engine, clock: Clock) -> None:
    job_id = push(engine, user_id="u1")
    delayed = push(engine, delay=5)
    assert status(engine, job_id) == ("queued", 0)
    assert status(engine, delayed) == ("delayed", 0)
    (claimed,) = engine.claim("q", 10, 30)
    assert status(engine, job_id) == ("running", 1)
    assert engine.ack(claimed, {"ok": True}, progress=(1.0, "done"))
    state = engine.job_state(job_id)
    assert state is not None
    assert (state.status, state.result, state.user) == ("succeeded", {"ok": True}, "u1")
    assert (state.progress, state.progress_message) == (1.0, "done")
    assert state.finished_at == clock.now
    clock.tick(5)
    assert status(engine, delayed) == ("queued", 0)  # its delay is over


def test_a_dead_worker_s_job_reads_queued_with_the_attempt_counted(
    engine: Engine, clock: Clock
) -> None:
    job_id = push(engine)
    engine.claim("q", 1, 10)
    assert status(engine, job_id) == ("running", 1)
    clock.tick(10)  # the lease ran out: nothing runs it any more
    assert status(engine, job_id) == ("queued", 1)
    assert [s.job_id for s in engine.job_states(status="queued")] == [job_id]
    assert engine.job_states(status="running") == []
    assert len(engine.claim("q", 1, 10)) == 1
    assert status(engine, job_id) == ("running", 2)
    clock.tick(10)
    assert engine.claim("q", 1, 10, max_attempts=2) == []  # spent: dead-lettered
    state = engine.job_state(job_id)
    assert state is not None and state.status == "dead" and state.error is not None
    assert EXPIRED_ERROR in state.error["message"]


def test_release_gives_the_receive_back(engine: Engine) -> None:
    job_id = push(engine)
    (claimed,) = engine.claim("q", 1, 30)
    assert engine.release(claimed)
    assert status(engine, job_id) == ("queued", 0)


def test_failures_then_dead_keep_the_error(engine: Engine) -> None:
    job_id = push(engine)
    (claimed,) = engine.claim("q", 1, 30)
    info = {"type": "ValueError", "message": "boom"}
    assert engine.fail(claimed, "boom", max_attempts=2, backoff=NO_WAIT, error_info=info) == (
        "retry"
    )
    state = engine.job_state(job_id)
    assert state is not None and (state.status, state.error) == ("failed", info)
    (claimed,) = engine.claim("q", 1, 30)
    assert engine.fail(claimed, "boom", max_attempts=2, backoff=NO_WAIT) == "dead"
    assert status(engine, job_id) == ("dead", 2)


def test_cancel_removes_a_waiting_job_from_its_fifo_group(engine: Engine) -> None:
    first, second, third = (push(engine, "o.fifo", group_id="g", dedupe_id=n) for n in "123")
    cancelled = engine.cancel(first)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert engine.cancel(second) is not None
    (claimed,) = engine.claim("o.fifo", 10, 30)  # the group moved on to its next job
    assert claimed.job_id == third


def test_cancel_of_a_job_in_backoff_stops_its_retries(engine: Engine) -> None:
    job_id = push(engine)
    (claimed,) = engine.claim("q", 1, 30)
    engine.fail(claimed, "boom", max_attempts=5, backoff=LATER)
    state = engine.cancel(job_id)
    assert state is not None and state.status == "cancelled"
    assert engine.stats(["q"])[0].delayed == 0


def test_cancel_of_a_running_job_asks_it_and_a_failure_then_is_not_retried(
    engine: Engine,
) -> None:
    job_id = push(engine)
    (claimed,) = engine.claim("q", 1, 30)
    assert not engine.progress(job_id, 0.5, "half")
    state = engine.cancel(job_id)
    assert state is not None and (state.status, state.cancel_requested) == ("running", True)
    assert engine.progress(job_id, 0.6, None)  # the handler learns at its next report
    assert engine.fail(claimed, "stopped", max_attempts=5, backoff=NO_WAIT) == "cancelled"
    assert status(engine, job_id) == ("cancelled", 1)
    assert engine.claim("q", 1, 30) == []


def test_finished_state_expires_after_keep_results(tmp_path: Path, clock: Clock) -> None:
    engine = Engine(tmp_path / "q.db", clock=clock, keep_results={"short": 60, "none": 0})
    short, none = push(engine, "short"), push(engine, "none")
    assert engine.job_state(none) is None
    (claimed,) = engine.claim("short", 1, 30)
    engine.ack(claimed, "r")
    clock.tick(60)
    assert status(engine, short) == ("succeeded", 1)
    clock.tick(1)
    assert engine.job_state(short) is None
    assert engine.job_states() == []
    (claimed,) = engine.claim("none", 1, 30)
    assert engine.ack(claimed, "r")
    raw = sqlite3.connect(tmp_path / "q.db")
    assert raw.execute("SELECT COUNT(*) FROM job_state WHERE job_id=?", (none,)).fetchone() == (0,)


def test_job_ids_are_time_ordered_uuids(engine: Engine, clock: Clock) -> None:
    ids = []
    for _ in range(3):
        ids.append(push(engine))
        clock.tick(0.001)
    assert ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert len({push(engine) for _ in range(100)}) == 100  # same millisecond, still unique


def test_another_process_pushes_with_the_worker_s_keep_settings(tmp_path: Path) -> None:
    server = Engine(tmp_path / "q.db")
    server.configure_keep({"none": 0, "short": 60})
    cli = Engine(tmp_path / "q.db")  # qr dev queue: no manifest, only the database
    assert dict(cli.keep_results) == {"none": 0.0, "short": 60.0}
    assert cli.job_state(push(cli, "none")) is None
    assert cli.job_state(push(cli, "short")) is not None


def test_attempts_are_kept_latest_first_and_old_databases_gain_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)  # a job_state table as qr made it before the dashboard
    old.execute(job_state.SCHEMA)
    old.close()
    engine = Engine(path, random=lambda: 0.0)
    try:
        job_id = engine.push(
            OutgoingJob("q", '{"a": 1}', "application/json"), origin=("http", "r1")
        ).job_id
        for _ in range(2):
            (claimed,) = engine.claim("q", 1, 30, max_attempts=2)
            engine.fail(
                claimed,
                "boom",
                max_attempts=2,
                backoff=Backoff(),
                error_info={"type": "E", "message": f"try {claimed.received_count}"},
            )
            engine.promote(job_id)
        detail = engine.job_detail(job_id)
        assert detail is not None
        assert [(a["attempt"], a["status"], a["error"]["message"]) for a in detail["attempts"]] == [
            (2, "dead", "try 2"),
            (1, "failed", "try 1"),
        ]
        assert detail["body"] == '{"a": 1}' and detail["origin"] == {"kind": "http", "id": "r1"}
        assert [s.job_id for s in engine.pushed_by("r1")] == [job_id]
    finally:
        engine.close()


def test_a_redriven_job_has_a_state_of_its_own(engine: Engine) -> None:
    dead = push(engine, user_id="u1")
    (claimed,) = engine.claim("q", 1, 10)
    engine.fail(claimed, "boom", max_attempts=1, backoff=NO_WAIT)
    assert engine.redrive("q") == 1
    (again,) = engine.claim("q", 1, 10)
    assert again.job_id != dead
    assert status(engine, dead) == ("dead", 1)
    state = engine.job_state(again.job_id)  # the dashboard and qr jobs list it
    assert state is not None
    assert (state.status, state.attempts, state.user) == ("running", 1, "u1")
    detail = engine.job_detail(again.job_id)
    assert detail is not None
    assert (detail["body"], detail["origin"]) == ("{}", {"kind": "retry", "id": dead})


def state_rows(engine: Engine) -> int:
    raw = sqlite3.connect(engine.path)
    try:
        return int(raw.execute("SELECT COUNT(*) FROM job_state").fetchone()[0])
    finally:
        raw.close()


def test_a_never_claimed_job_reads_from_its_queue_row(engine: Engine, clock: Clock) -> None:
    now = clock.now
    queued = engine.push(
        OutgoingJob("q", '{"a": 1}', JSON, user_id="u1"), origin=("http", "r1")
    ).job_id
    delayed = push(engine, delay=30)
    assert state_rows(engine) == 0  # a push writes its queue row only
    state = engine.job_state(queued)
    assert state is not None
    assert (state.status, state.attempts, state.user, state.queue) == ("queued", 0, "u1", "q")
    assert (state.queued_at, state.started_at, state.finished_at) == (now, None, None)
    assert (state.result, state.error, state.progress, state.cancel_requested) == (
        None,
        None,
        None,
        False,
    )
    assert status(engine, delayed) == ("delayed", 0)
    detail = engine.job_detail(queued)
    assert detail == {
        "body": '{"a": 1}',
        "content_type": JSON,
        "group_id": None,
        "attempts": [],
        "origin": {"kind": "http", "id": "r1"},
    }
    assert [s.job_id for s in engine.pushed_by("r1")] == [queued]
    (claimed,) = engine.claim("q", 10, 30)
    assert status(engine, queued) == ("running", 1)
    assert engine.job_detail(queued) == detail
    assert engine.ack(claimed)  # the ack makes the row, payload and origin too
    assert state_rows(engine) == 1
    assert [(s.job_id, s.status) for s in engine.pushed_by("r1")] == [(queued, "succeeded")]
    assert engine.job_detail(queued)["origin"] == {"kind": "http", "id": "r1"}  # type: ignore[index]
    replayed = engine.replay(delayed)  # the payload of a job never claimed
    assert replayed is not None and status(engine, replayed) == ("queued", 0)


def test_cancelling_or_purging_never_claimed_jobs_records_them(engine: Engine) -> None:
    queued, delayed = push(engine), push(engine, delay=30)
    for job_id in (queued, delayed):
        state = engine.cancel(job_id)
        assert state is not None and (state.status, state.attempts) == ("cancelled", 0)
        assert status(engine, job_id) == ("cancelled", 0)
    assert engine.claim("q", 10, 30) == [] and engine.stats(["q"])[0].delayed == 0
    purged = [push(engine), push(engine, delay=30)]
    assert engine.purge("q") == 2
    for job_id in purged:
        state = engine.job_state(job_id)
        assert state is not None and state.status == "cancelled" and state.error is not None
        assert state.error["type"] == "Purged"
    first = engine.push(OutgoingJob("q", '"a1"', JSON, delay=5, debounce_key="a")).job_id
    engine.push(OutgoingJob("q", '"a2"', JSON, delay=5, debounce_key="a"))
    state = engine.job_state(first)  # replaced by the later push before anything claimed it
    assert state is not None and state.status == "cancelled" and state.error is not None
    assert state.error["type"] == "Debounced"


def test_a_rate_limited_job_postponed_before_its_first_claim_reads_queued(
    engine: Engine,
) -> None:
    first, second = push(engine), push(engine)
    assert [c.job_id for c in engine.claim("q", 10, 30, rate_limit=RateLimit(1, 60))] == [first]
    assert status(engine, second) == ("queued", 0)  # held back, not delayed by its pusher


def test_never_claimed_jobs_are_listed_with_claimed_ones(engine: Engine, clock: Clock) -> None:
    engine.configure_keep({"none": 0})
    first = push(engine)
    clock.tick(0.001)
    later = push(engine, delay=30)
    push(engine, "none")  # keeps no state: not listed, unknown
    clock.tick(0.001)
    other = push(engine, "other")
    clock.tick(0.001)
    newest = push(engine)
    engine.claim("q", 1, 30)  # the oldest ready job: first
    assert [(s.job_id, s.status) for s in engine.job_states()] == [
        (newest, "queued"),
        (other, "queued"),
        (later, "delayed"),
        (first, "running"),
    ]
    assert [s.job_id for s in engine.job_states(queue="q", limit=2)] == [newest, later]
    assert [s.job_id for s in engine.job_states(status="delayed")] == [later]
    assert [s.job_id for s in engine.job_states(status="running")] == [first]
    assert engine.job_states(queue="none") == []
    assert state_rows(engine) == 0  # neither a push nor a claim writes a row


# The tables as the previous qr made them: every push wrote a job_state row; jobs had no origin.
PREVIOUS_SCHEMA = """
CREATE TABLE jobs(seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, job_id TEXT NOT NULL,
  body TEXT NOT NULL, content_type TEXT NOT NULL, user_id TEXT, params TEXT, group_id TEXT,
  dedupe_id TEXT, queued_ms INTEGER NOT NULL, visible_ms INTEGER NOT NULL,
  received_count INTEGER NOT NULL DEFAULT 0, receipt TEXT, received_ms INTEGER, last_error TEXT);
CREATE INDEX jobs_ready ON jobs(queue, visible_ms, seq);
CREATE TABLE job_state(job_id TEXT PRIMARY KEY, queue TEXT NOT NULL, seq INTEGER,
  status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, user_id TEXT, result TEXT,
  error TEXT, progress REAL, progress_message TEXT, cancel INTEGER NOT NULL DEFAULT 0,
  queued_ms INTEGER NOT NULL, started_ms INTEGER, finished_ms INTEGER, keep_ms INTEGER NOT NULL,
  expires_ms INTEGER, body TEXT, content_type TEXT, group_id TEXT, history TEXT,
  origin_kind TEXT, origin_id TEXT) WITHOUT ROWID;
INSERT INTO jobs(seq, queue, job_id, body, content_type, user_id, queued_ms, visible_ms)
  VALUES(1, 'q', 'old-queued', '{"n": 1}', 'application/json', 'u1', 1000000000, 1000000000),
        (2, 'q', 'old-delayed', '{"n": 2}', 'application/json', NULL, 1000000000, 1000060000);
INSERT INTO job_state(job_id, queue, seq, status, user_id, queued_ms, keep_ms, body,
  content_type, origin_kind, origin_id)
  VALUES('old-queued', 'q', 1, 'queued', 'u1', 1000000000, 86400000, '{"n": 1}',
         'application/json', 'http', 'r0'),
        ('old-delayed', 'q', 2, 'delayed', NULL, 1000000000, 86400000, '{"n": 2}',
         'application/json', 'http', 'r0');
"""


def test_a_database_from_the_previous_schema_keeps_working(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "queues.db"
    old = sqlite3.connect(path)
    old.executescript(PREVIOUS_SCHEMA)
    old.close()
    engine = Engine(path, clock=clock, random=lambda: 1.0)
    try:
        assert status(engine, "old-queued") == ("queued", 0)
        assert status(engine, "old-delayed") == ("delayed", 0)
        clock.tick(1)
        new = engine.push(OutgoingJob("q", "{}", JSON), origin=("http", "r1")).job_id
        assert [s.job_id for s in engine.job_states()] == [new, "old-queued", "old-delayed"]
        (claimed, fresh) = engine.claim("q", 10, 30)
        assert (claimed.job_id, fresh.job_id) == ("old-queued", new)
        assert status(engine, "old-queued") == ("running", 1)
        assert engine.ack(claimed, {"ok": True})
        state = engine.job_state("old-queued")
        assert state is not None and (state.status, state.result) == ("succeeded", {"ok": True})
        detail = engine.job_detail("old-queued")
        assert detail is not None and detail["origin"] == {"kind": "http", "id": "r0"}
        assert engine.job_detail(new)["origin"] == {"kind": "http", "id": "r1"}  # type: ignore[index]
        assert engine.cancel("old-delayed") is not None
        assert status(engine, "old-delayed") == ("cancelled", 0)
    finally:
        engine.close()


def raw_row(engine: Engine, job_id: str) -> tuple[str, int] | None:
    """The state row as stored (status, attempts), not as read: what the engine wrote when."""
    raw = sqlite3.connect(engine.path)
    try:
        row = raw.execute(
            "SELECT status, attempts FROM job_state WHERE job_id=?", (job_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))
    finally:
        raw.close()


def test_a_running_job_reads_from_its_queue_row(engine: Engine, clock: Clock) -> None:
    pushed = engine.push(OutgoingJob("q", '{"a": 1}', JSON, user_id="u1"), origin=("http", "r1"))
    job_id = pushed.job_id
    clock.tick(2)
    assert len(engine.claim("q", 10, 30)) == 1
    assert state_rows(engine) == 0  # the claim writes no state row
    state = engine.job_state(job_id)
    assert state is not None
    assert (state.status, state.attempts, state.user) == ("running", 1, "u1")
    assert (state.queued_at, state.started_at, state.finished_at) == (
        clock.now - 2,
        clock.now,
        None,
    )
    assert state.cancel_requested is False
    assert [(s.job_id, s.status) for s in engine.job_states(status="running")] == [
        (job_id, "running")
    ]
    assert [s.status for s in engine.pushed_by("r1")] == ["running"]
    detail = engine.job_detail(job_id)
    assert detail is not None and (detail["body"], detail["attempts"]) == ('{"a": 1}', [])
    clock.tick(30)  # its worker died: the lease ran out
    assert status(engine, job_id) == ("queued", 1)
    assert engine.job_states(status="running") == []
    (again,) = engine.claim("q", 10, 30)
    assert status(engine, job_id) == ("running", 2)
    assert engine.release(again)  # shutdown: given back, that receive not counted
    assert status(engine, job_id) == ("queued", 1)
    assert state_rows(engine) == 0


def test_progress_and_cancel_of_a_running_job_with_no_row_yet(engine: Engine, clock: Clock) -> None:
    reporting, cancelled = push(engine), push(engine)
    first, second = engine.claim("q", 10, 30)
    assert state_rows(engine) == 0
    assert engine.progress(reporting, 0.25, "a quarter") is False  # its first report: the row
    assert raw_row(engine, reporting) == ("running", 1)
    state = engine.job_state(reporting)
    assert state is not None and (state.status, state.progress) == ("running", 0.25)
    assert state.progress_message == "a quarter"
    assert engine.progress(reporting, 0.5, None) is False
    state = engine.cancel(cancelled)
    assert state is not None and (state.status, state.cancel_requested) == ("running", True)
    assert raw_row(engine, cancelled) == ("running", 1)
    assert engine.progress(cancelled, 0.1, None) is True  # it learns at its next report
    assert engine.cancel_requested(cancelled)
    assert engine.fail(second, "stopped", max_attempts=5, backoff=NO_WAIT) == "cancelled"
    assert status(engine, cancelled) == ("cancelled", 1)
    assert engine.ack(first)
    state = engine.job_state(reporting)
    assert state is not None and (state.status, state.progress) == ("succeeded", 0.5)
    assert state.progress_message is None
    assert engine.progress("no-such-job", 0.5, None) is False
    assert engine.job_state("no-such-job") is None


def test_the_outcome_row_is_written_at_ack(engine: Engine, clock: Clock) -> None:
    plain, with_result, reporting, stale = (push(engine) for _ in range(4))
    claimed = {c.job_id: c for c in engine.claim("q", 3, 30)}
    clock.tick(1)
    assert state_rows(engine) == 0
    done = engine.ack_many(
        [(claimed[plain], None), (claimed[with_result], {"n": 1}), (claimed[reporting], None)],
        {reporting: (0.9, "nearly")},
    )
    assert done == [True, True, True]
    assert state_rows(engine) == 3  # one per acked job, the claim wrote none
    states = {s.job_id: s for s in engine.job_states(status="succeeded")}
    assert set(states) == {plain, with_result, reporting}
    assert all(s.attempts == 1 and s.finished_at == clock.now for s in states.values())
    assert all(s.started_at == clock.now - 1 for s in states.values())
    assert states[with_result].result == {"n": 1} and states[plain].result is None
    assert (states[reporting].progress, states[reporting].progress_message) == (0.9, "nearly")
    for job_id in (plain, with_result):
        detail = engine.job_detail(job_id)
        assert detail is not None and detail["body"] == "{}"
        assert [(a["attempt"], a["status"]) for a in detail["attempts"]] == [(1, "succeeded")]
    (old,) = engine.claim("q", 1, 5)
    assert old.job_id == stale
    clock.tick(5)  # its lease ran out and another worker took it
    (current,) = engine.claim("q", 1, 30)
    assert engine.ack_many([(old, "late")]) == [False]  # a lost lease records nothing
    assert status(engine, stale) == ("running", 2)
    assert raw_row(engine, stale) is None
    assert engine.ack(current, "on time")
    state = engine.job_state(stale)
    assert state is not None and (state.status, state.attempts, state.result) == (
        "succeeded",
        2,
        "on time",
    )


def test_a_failed_attempt_s_error_is_visible_while_it_waits_for_its_retry(
    engine: Engine, clock: Clock
) -> None:
    job_id = push(engine)
    (claimed,) = engine.claim("q", 1, 30)
    info = {"type": "ValueError", "message": "boom"}
    assert engine.fail(claimed, "boom", max_attempts=5, backoff=LATER, error_info=info) == "retry"
    state = engine.job_state(job_id)
    assert state is not None and (state.status, state.attempts, state.error) == ("failed", 1, info)
    assert [s.job_id for s in engine.job_states(status="failed")] == [job_id]
    clock.tick(60)  # the backoff is over
    (again,) = engine.claim("q", 1, 30)
    assert raw_row(engine, job_id) == ("failed", 1)  # the claim left the row as it was
    state = engine.job_state(job_id)  # the queue row is newer: running its second attempt
    assert state is not None
    assert (state.status, state.attempts, state.error) == ("running", 2, info)
    assert state.started_at == clock.now
    assert engine.job_states(status="failed") == []
    assert engine.release(again)
    assert status(engine, job_id) == ("queued", 1)
    (again,) = engine.claim("q", 1, 30)
    assert engine.progress(job_id, 0.5, None) is False  # moves the old row to this attempt
    assert raw_row(engine, job_id) == ("running", 2)
    assert engine.ack(again)
    state = engine.job_state(job_id)
    assert state is not None and (state.status, state.attempts) == ("succeeded", 2)
    detail = engine.job_detail(job_id)
    assert detail is not None
    assert [(a["attempt"], a["status"]) for a in detail["attempts"]] == [
        (2, "succeeded"),
        (1, "failed"),
    ]


def test_a_listing_mixes_rows_and_queue_rows(engine: Engine, clock: Clock) -> None:
    ids = {}
    for name in ("succeeded", "failed", "retrying", "reporting", "running", "expired"):
        ids[name] = push(engine)
        clock.tick(0.001)
    ids["delayed"] = push(engine, delay=600)
    claimed = {c.job_id: c for c in engine.claim("q", 5, 30)}
    (short,) = engine.claim("q", 1, 1)
    assert short.job_id == ids["expired"]
    assert engine.ack(claimed[ids["succeeded"]])
    for name in ("failed", "retrying"):
        engine.fail(claimed[ids[name]], "boom", max_attempts=5, backoff=LATER)
    assert engine.promote(ids["retrying"])
    engine.progress(ids["reporting"], 0.5, None)
    clock.tick(2)  # the short lease ran out (its worker died); the others hold 30 s
    (retry,) = engine.claim("q", 1, 30)  # the promoted retry was visible first
    assert retry.job_id == ids["retrying"]
    clock.tick(0.001)
    ids["queued"] = push(engine)
    expected = {
        "queued": ("queued", 0),
        "delayed": ("delayed", 0),
        "expired": ("queued", 1),
        "running": ("running", 1),
        "reporting": ("running", 1),
        "retrying": ("running", 2),
        "failed": ("failed", 1),
        "succeeded": ("succeeded", 1),
    }
    listed = engine.job_states()
    assert [s.job_id for s in listed] == [ids[name] for name in expected]  # newest first
    assert {s.job_id: (s.status, s.attempts) for s in listed} == {
        ids[name]: value for name, value in expected.items()
    }
    assert [s.job_id for s in engine.job_states(status="running")] == [
        ids["running"],
        ids["reporting"],
        ids["retrying"],
    ]
    assert [s.job_id for s in engine.job_states(status="queued", limit=1)] == [ids["queued"]]
    assert [s.job_id for s in engine.job_states(status="failed")] == [ids["failed"]]
    assert state_rows(engine) == 4  # succeeded, failed, retrying (its failure), reporting


def test_a_row_the_previous_version_wrote_at_claim_is_updated_at_ack(
    engine: Engine, clock: Clock
) -> None:
    first, second = push(engine), push(engine)
    held = {c.job_id: c for c in engine.claim("q", 2, 30)}
    raw = sqlite3.connect(engine.path)  # what the previous qr's claim wrote for each
    with raw:
        for job_id in (first, second):
            raw.execute(
                "INSERT INTO job_state(job_id, queue, seq, status, attempts, queued_ms, "
                "started_ms, keep_ms, body, content_type) SELECT job_id, queue, seq, 'running', "
                "received_count, queued_ms, received_ms, 86400000, body, content_type FROM jobs "
                "WHERE job_id=?",
                (job_id,),
            )
    raw.close()
    assert status(engine, first) == ("running", 1)
    assert engine.ack(held[first], {"ok": 1})
    state = engine.job_state(first)
    assert state is not None and (state.status, state.result) == ("succeeded", {"ok": 1})
    assert state_rows(engine) == 2
    clock.tick(30)  # the other's worker died (kill -9 of the previous version)
    assert status(engine, second) == ("queued", 1)
    (again,) = engine.claim("q", 1, 30)
    assert status(engine, second) == ("running", 2)
    assert engine.ack(again)
    assert status(engine, second) == ("succeeded", 2)
