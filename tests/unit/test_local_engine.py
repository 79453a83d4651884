"""The SQLite engine's rules, one by one, on a fake clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from qr.runtime.jobs import backoff_delay
from qr.runtime.local.engine import EXPIRED_ERROR, Engine, LeaseError
from qr.runtime.manifest import Backoff
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import JSON, TEXT

NO_WAIT = Backoff("fixed", 0, 0, jitter=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Engine:
    return Engine(tmp_path / "queues.db", clock=clock, random=lambda: 1.0)


def job(queue: str = "q", body: str = "{}", **kw: object) -> OutgoingJob:
    return OutgoingJob(queue, body, JSON, **kw)  # type: ignore[arg-type]


def test_database_is_wal_under_the_given_path(engine: Engine, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "queues.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_push_claim_ack_keeps_the_result(engine: Engine) -> None:
    pushed = engine.push(OutgoingJob("q", "hi", TEXT, user_id="u", params={"id": "1"}))
    (claimed,) = engine.claim("q", 10, 30)
    assert (claimed.job_id, claimed.body, claimed.content_type) == (pushed.job_id, "hi", TEXT)
    assert (claimed.user_id, claimed.params, claimed.received_count) == ("u", {"id": "1"}, 1)
    assert engine.claim("q", 10, 30) == []
    assert engine.ack(claimed, {"sent": True})
    assert engine.result(pushed.job_id) == {"sent": True}
    assert engine.stats() == []
    assert not engine.ack(claimed)  # already deleted


def test_claimed_job_is_invisible_until_its_lease_ends(engine: Engine, clock: Clock) -> None:
    engine.push(job())
    (first,) = engine.claim("q", 1, 30)
    clock.tick(29.9)
    assert engine.claim("q", 1, 30) == []
    clock.tick(0.2)
    (again,) = engine.claim("q", 1, 30)
    assert again.job_id == first.job_id
    assert again.received_count == 2
    assert again.receipt != first.receipt
    assert not engine.ack(first)  # the old receipt lost the job
    assert engine.ack(again)


def test_failure_returns_the_job_after_its_backoff(engine: Engine, clock: Clock) -> None:
    engine.push(job())
    (claimed,) = engine.claim("q", 1, 30)
    backoff = Backoff("exponential", 2, 300, jitter=False)
    assert engine.fail(claimed, "boom", max_attempts=3, backoff=backoff) == "retry"
    assert engine.stats()[0].delayed == 1
    clock.tick(1.9)
    assert engine.claim("q", 1, 30) == []
    clock.tick(0.1)
    (second,) = engine.claim("q", 1, 30)
    assert engine.fail(second, "boom", max_attempts=3, backoff=backoff) == "retry"
    clock.tick(3.9)  # second retry waits 4 s
    assert engine.claim("q", 1, 30) == []
    clock.tick(0.1)
    assert engine.claim("q", 1, 30)[0].received_count == 3


def test_backoff_strategies_cap_and_jitter() -> None:
    exponential = Backoff("exponential", 2, 10, jitter=False)
    assert [backoff_delay(exponential, n) for n in (1, 2, 3, 4, 50)] == [2, 4, 8, 10, 10]
    assert backoff_delay(Backoff("fixed", 3, 10, jitter=False), 9) == 3
    jittered = Backoff("exponential", 4, 100, jitter=True)
    assert backoff_delay(jittered, 1, lambda: 0.0) == 2  # lower half bound
    assert backoff_delay(jittered, 1, lambda: 1.0) == 4
    huge = Backoff("exponential", 43200, 43200, jitter=False)
    assert backoff_delay(huge, 3) == 43200


def test_dead_letter_after_max_attempts_keeps_payload_count_error(
    engine: Engine, clock: Clock
) -> None:
    pushed = engine.push(OutgoingJob("q", "payload", TEXT))
    for attempt in (1, 2, 3):
        (claimed,) = engine.claim("q", 1, 30)
        assert claimed.received_count == attempt
        outcome = engine.fail(claimed, f"error {attempt}", max_attempts=3, backoff=NO_WAIT)
        assert outcome == ("dead" if attempt == 3 else "retry")
    assert engine.claim("q", 1, 30) == []
    (dead,) = engine.dead_jobs("q")
    assert (dead.job_id, dead.body, dead.content_type) == (pushed.job_id, "payload", TEXT)
    assert (dead.received_count, dead.last_error) == (3, "error 3")
    assert engine.stats()[0].dead == 1


def test_an_expired_lease_counts_and_a_spent_job_is_dead_lettered_on_claim(
    engine: Engine, clock: Clock
) -> None:
    engine.push(job())
    (claimed,) = engine.claim("q", 1, 10, max_attempts=2)
    assert engine.fail(claimed, "first", max_attempts=2, backoff=NO_WAIT) == "retry"
    engine.claim("q", 1, 10, max_attempts=2)  # the worker "crashes" holding it
    clock.tick(11)
    assert engine.claim("q", 1, 10, max_attempts=2) == []
    (dead,) = engine.dead_jobs("q")
    assert dead.received_count == 2
    assert dead.last_error == f"{EXPIRED_ERROR}; before that: first"


def test_fail_with_a_lost_lease_is_stale(engine: Engine, clock: Clock) -> None:
    engine.push(job())
    (claimed,) = engine.claim("q", 1, 1)
    clock.tick(2)
    engine.claim("q", 1, 30)
    assert engine.fail(claimed, "late", max_attempts=3, backoff=NO_WAIT) == "stale"


def test_delay_hides_a_job_until_it_is_due(engine: Engine, clock: Clock) -> None:
    engine.push(job(delay=60))
    assert engine.stats()[0].delayed == 1
    assert engine.next_visible_ms("q") == int((clock.now + 60) * 1000)
    clock.tick(59)
    assert engine.claim("q", 1, 30) == []
    clock.tick(1)
    assert len(engine.claim("q", 1, 30)) == 1


def test_standard_claims_in_batches_oldest_first(engine: Engine) -> None:
    ids = [engine.push(job(body=str(i))).job_id for i in range(25)]
    batch = engine.claim("q", 10, 30)
    assert [c.job_id for c in batch] == ids[:10]
    assert [c.job_id for c in engine.claim("q", 10, 30)] == ids[10:20]
    stats = engine.stats()[0]
    assert (stats.depth, stats.in_flight, stats.delayed) == (5, 20, 0)


def test_queues_are_separate(engine: Engine) -> None:
    engine.push(job("a"))
    assert engine.claim("b", 10, 30) == []
    assert len(engine.claim("a", 10, 30)) == 1


def fifo(group: str, body: str, dedupe: str | None = None) -> OutgoingJob:
    return OutgoingJob("f.fifo", body, JSON, group_id=group, dedupe_id=dedupe)


def test_fifo_runs_one_job_per_group_in_order(engine: Engine) -> None:
    for i in range(3):
        engine.push(fifo("a", f"a{i}"))
        engine.push(fifo("b", f"b{i}"))
    seen: list[str] = []
    for _ in range(3):
        batch = engine.claim("f.fifo", 10, 30)
        assert sorted(c.group_id or "" for c in batch) == ["a", "b"]  # one per group
        assert engine.claim("f.fifo", 10, 30) == []  # both groups are busy
        for claimed in batch:
            seen.append(claimed.body)
            engine.ack(claimed)
    assert [b for b in seen if b[0] == "a"] == ["a0", "a1", "a2"]
    assert [b for b in seen if b[0] == "b"] == ["b0", "b1", "b2"]


def test_fifo_failing_job_blocks_only_its_group(engine: Engine, clock: Clock) -> None:
    engine.push(fifo("a", "a0"))
    engine.push(fifo("a", "a1"))
    engine.push(fifo("b", "b0"))
    engine.push(fifo("b", "b1"))
    batch = {c.body: c for c in engine.claim("f.fifo", 10, 30)}
    backoff = Backoff("fixed", 10, 10, jitter=False)
    assert engine.fail(batch["a0"], "x", max_attempts=5, backoff=backoff) == "retry"
    engine.ack(batch["b0"])
    assert [c.body for c in engine.claim("f.fifo", 10, 30)] == ["b1"]  # a1 waits behind a0
    clock.tick(10)
    (retry,) = engine.claim("f.fifo", 10, 30)
    assert (retry.body, retry.received_count) == ("a0", 2)


def test_fifo_dead_letter_unblocks_the_group(engine: Engine) -> None:
    engine.push(fifo("a", "a0"))
    engine.push(fifo("a", "a1"))
    (head,) = engine.claim("f.fifo", 10, 30)
    assert engine.fail(head, "x", max_attempts=1, backoff=NO_WAIT) == "dead"
    assert [c.body for c in engine.claim("f.fifo", 10, 30)] == ["a1"]
    assert engine.dead_jobs("f.fifo")[0].group_id == "a"


def test_fifo_expired_lease_unlocks_the_group(engine: Engine, clock: Clock) -> None:
    engine.push(fifo("a", "a0"))
    engine.push(fifo("a", "a1"))
    engine.claim("f.fifo", 10, 30)
    clock.tick(31)
    (again,) = engine.claim("f.fifo", 10, 30)
    assert (again.body, again.received_count) == ("a0", 2)


def test_fifo_sequence_numbers_increase_per_group(engine: Engine) -> None:
    numbers = [engine.push(fifo("a", str(i))).sequence_number or 0 for i in range(5)]
    assert all(n > 0 for n in numbers)
    assert numbers == sorted(numbers) and len(set(numbers)) == 5
    assert engine.push(job()).sequence_number is None
    (claimed,) = engine.claim("f.fifo", 1, 30)
    assert claimed.sequence_number == numbers[0]


def test_fifo_dedupe_by_body_hash_and_by_id(engine: Engine, clock: Clock) -> None:
    first = engine.push(fifo("a", '{"x":1}'))
    again = engine.push(fifo("b", '{"x":1}'))  # the window is per queue, not per group
    assert again == type(again)(first.job_id, first.sequence_number, duplicate=True)
    by_id = engine.push(fifo("a", "1", dedupe="order-1"))
    assert engine.push(fifo("a", "2", dedupe="order-1")).job_id == by_id.job_id
    assert engine.stats()[0].depth == 2


def test_fifo_dedupe_is_remembered_after_delete_for_five_minutes(
    engine: Engine, clock: Clock
) -> None:
    first = engine.push(fifo("a", "x"))
    (claimed,) = engine.claim("f.fifo", 1, 30)
    engine.ack(claimed)
    clock.tick(299)
    assert engine.push(fifo("a", "x")).job_id == first.job_id
    assert engine.stats() == []
    clock.tick(1)
    fresh = engine.push(fifo("a", "x"))
    assert fresh.job_id != first.job_id and not fresh.duplicate


def test_release_returns_a_job_without_using_an_attempt(engine: Engine, clock: Clock) -> None:
    engine.push(fifo("a", "a0"))
    (claimed,) = engine.claim("f.fifo", 1, 30)
    assert engine.release(claimed)
    (again,) = engine.claim("f.fifo", 1, 30)
    assert (again.job_id, again.received_count) == (claimed.job_id, 1)
    assert not engine.release(claimed)


def test_release_of_a_job_that_ran_counts_its_attempt(engine: Engine, clock: Clock) -> None:
    engine.push(fifo("a", "a0"))
    (claimed,) = engine.claim("f.fifo", 1, 30)
    assert engine.release(claimed, count=True)
    (again,) = engine.claim("f.fifo", 1, 30)
    assert (again.job_id, again.received_count) == (claimed.job_id, 2)


def test_extend_lengthens_the_lease_up_to_twelve_hours(engine: Engine, clock: Clock) -> None:
    engine.push(fifo("a", "a0"))
    engine.push(fifo("a", "a1"))
    (claimed,) = engine.claim("f.fifo", 1, 30)
    clock.tick(20)
    engine.extend(claimed, 100)
    clock.tick(90)
    assert engine.claim("f.fifo", 1, 30) == []  # still held: group still locked
    engine.extend(claimed, 5)  # never shortens
    with pytest.raises(LeaseError, match="12 hours"):
        engine.extend(claimed, 43_200)
    clock.tick(11)
    assert engine.claim("f.fifo", 1, 30)[0].body == "a0"
    with pytest.raises(LeaseError, match="no longer held"):
        engine.extend(claimed, 10)


def test_redrive_moves_dead_jobs_back_as_new_jobs(engine: Engine) -> None:
    original = engine.push(fifo("a", "a0")).job_id
    engine.push(fifo("a", "a1"))
    for _ in range(2):
        (claimed,) = engine.claim("f.fifo", 1, 30)
        engine.fail(claimed, "x", max_attempts=1, backoff=NO_WAIT)
    assert engine.redrive("f.fifo") == 2
    assert engine.dead_jobs("f.fifo") == []
    (first,) = engine.claim("f.fifo", 10, 30)
    assert (first.body, first.received_count) == ("a0", 1)
    assert first.job_id != original
    engine.ack(first)
    assert engine.claim("f.fifo", 10, 30)[0].body == "a1"
    assert engine.redrive("f.fifo") == 0


def test_purge_deletes_waiting_delayed_and_in_flight_jobs_of_one_queue(engine: Engine) -> None:
    engine.push(job("a"))
    (held,) = engine.claim("a", 1, 30)
    waiting = engine.push(job("a")).job_id
    engine.push(job("a", delay=60))
    engine.push(fifo("g", "g0"))
    (head,) = engine.claim("f.fifo", 1, 30)
    engine.fail(head, "x", max_attempts=1, backoff=NO_WAIT)
    engine.push(job("b"))

    assert engine.purge("a") == 2 + 1
    assert engine.purge("f.fifo") == 0
    stats = {s.queue: (s.depth, s.in_flight, s.delayed, s.dead) for s in engine.stats(["a", "b"])}
    assert stats["a"] == (0, 0, 0, 0)
    assert stats["b"] == (1, 0, 0, 0)
    assert stats["f.fifo"] == (0, 0, 0, 1)
    state = engine.job_state(waiting)
    assert state is not None and state.status == "cancelled"
    assert state.error == {"type": "Purged", "message": "the queue a was purged"}
    assert engine.ack(held) is False
    assert engine.purge("f.fifo", dead=True) == 1
    assert engine.dead_jobs("f.fifo") == []


def test_purge_of_a_fifo_queue_unblocks_its_groups_for_new_jobs(engine: Engine) -> None:
    engine.push(fifo("g", "g0"))
    engine.push(fifo("g", "g1"))
    engine.claim("f.fifo", 1, 30)
    assert engine.purge("f.fifo") == 2
    engine.push(fifo("g", "g2"))
    (claimed,) = engine.claim("f.fifo", 10, 30)
    assert claimed.body == "g2"


def test_stats_list_requested_queues_even_when_empty(engine: Engine, clock: Clock) -> None:
    engine.push(job("a"))
    engine.push(job("a", delay=10))
    engine.claim("a", 1, 30)
    stats = {s.queue: s.to_dict() for s in engine.stats(["a", "b"])}
    assert stats["a"] == {"queue": "a", "depth": 0, "in_flight": 1, "delayed": 1, "dead": 0}
    assert stats["b"] == {"queue": "b", "depth": 0, "in_flight": 0, "delayed": 0, "dead": 0}


def test_state_survives_reopening_the_database(tmp_path: Path, clock: Clock) -> None:
    first = Engine(tmp_path / "q.db", clock=clock)
    pushed = first.push(fifo("a", "x"))
    first.claim("f.fifo", 1, 30)
    first.close()
    second = Engine(tmp_path / "q.db", clock=clock)
    assert second.claim("f.fifo", 1, 30) == []  # the lease is stored
    clock.tick(31)
    assert second.claim("f.fifo", 1, 30)[0].job_id == pushed.job_id
    assert second.push(fifo("a", "x")).duplicate


def test_push_notifies_subscribers_and_other_connections_see_data_version(
    tmp_path: Path,
) -> None:
    engine = Engine(tmp_path / "q.db")
    other = Engine(tmp_path / "q.db")
    pushed: list[str] = []
    unsubscribe = engine.subscribe(pushed.append)
    before = engine.data_version()
    engine.push(job("a"))
    assert pushed == ["a"]
    assert engine.data_version() == before  # its own writes are announced by the callback
    other.push(job("b"))
    assert engine.data_version() != before
    unsubscribe()
    engine.push(job("a"))
    assert pushed == ["a"]


def test_engine_refuses_fifo_jobs_sqs_would_refuse(engine: Engine) -> None:
    with pytest.raises(ValueError, match="needs a group id"):
        engine.push(OutgoingJob("f.fifo", "x", JSON))
    with pytest.raises(ValueError, match="no per-job delay"):
        engine.push(OutgoingJob("f.fifo", "x", JSON, group_id="g", delay=1))


def test_results_that_are_not_json_are_kept_as_text(engine: Engine) -> None:
    pushed = engine.push(job())
    (claimed,) = engine.claim("q", 1, 30)
    engine.ack(claimed, {1, 2})
    assert engine.result(pushed.job_id) == "{1, 2}"
    assert engine.result("missing") is None


def test_fifo_sequence_numbers_keep_growing_after_the_queue_empties(engine: Engine) -> None:
    first = engine.push(fifo("a", "1")).sequence_number or 0
    (claimed,) = engine.claim("f.fifo", 1, 30)
    engine.ack(claimed)  # the table is empty: SQLite would hand out the same rowid again
    second = engine.push(fifo("a", "2")).sequence_number or 0
    engine.push(job())
    third = engine.push(fifo("a", "3")).sequence_number or 0
    assert first < second < third
