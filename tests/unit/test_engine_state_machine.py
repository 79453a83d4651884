"""A Hypothesis state machine over the engine: push/claim/ack/fail/expire/crash against a model.

The model is the SQS contract, not the implementation: which jobs exist, in which order each FIFO
group was pushed, who holds what until when, how often each job was received, which are dead.
After every step it checks FIFO order, one job in flight per group, dedupe, and that nothing is
lost (the engine's live and dead jobs are exactly the model's).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from qr.runtime.local.engine import Claimed, Engine
from qr.runtime.manifest import Backoff
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import JSON

MAX_ATTEMPTS = 3
LEASE = 10.0
BACKOFF = Backoff("fixed", 5, 5, jitter=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ModelJob:
    job_id: str
    queue: str
    group: str | None
    order: int
    received: int = 0


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.clock = Clock()
        self.engine = Engine(self.dir / "q.db", clock=self.clock)
        self.live: dict[str, ModelJob] = {}
        self.dead: dict[str, int] = {}
        self.done: set[str] = set()
        self.held: dict[str, tuple[Claimed, float]] = {}
        self.orphaned: dict[str, tuple[str | None, float]] = {}
        """Leases of a crashed worker: nobody can ack them, only time frees them."""
        self.dedupe: dict[str, tuple[str, float]] = {}
        self.order = 0

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules -----------------------------------------------------------------------------

    @rule(body=st.integers(0, 3), delay=st.sampled_from([0, 0, 3]))
    def push_standard(self, body: int, delay: int) -> None:
        result = self.engine.push(OutgoingJob("std", str(body), JSON, delay=delay))
        assert result.job_id not in self.live and not result.duplicate
        self.order += 1
        self.live[result.job_id] = ModelJob(result.job_id, "std", None, self.order)

    @rule(group=st.sampled_from("ab"), body=st.integers(0, 9), dedupe=st.sampled_from([0, 0, 1]))
    def push_fifo(self, group: str, body: int, dedupe: int) -> None:
        dedupe_id = f"d{body}" if dedupe else None
        key = dedupe_id or f"body:{body}"
        result = self.engine.push(
            OutgoingJob("f.fifo", str(body), JSON, group_id=group, dedupe_id=dedupe_id)
        )
        remembered = self.dedupe.get(key)
        if remembered is not None and remembered[1] > self.clock.now:
            assert result.duplicate and result.job_id == remembered[0], "dedupe missed"
            return
        assert not result.duplicate, "a push outside the dedupe window was dropped"
        self.dedupe[key] = (result.job_id, self.clock.now + 300)
        self.order += 1
        self.live[result.job_id] = ModelJob(result.job_id, "f.fifo", group, self.order)

    @rule(queue=st.sampled_from(("f.fifo", "f.fifo", "std")), limit=st.integers(1, 4))
    def claim(self, queue: str, limit: int) -> None:
        self._expire_model()
        batch = self.engine.claim(queue, limit, LEASE, max_attempts=MAX_ATTEMPTS)
        assert len(batch) <= limit
        self._sync_dead(queue)
        for claimed in batch:
            job = self.live.get(claimed.job_id)
            assert job is not None, "claimed a job that is done, dead or unknown"
            in_flight = claimed.job_id in self.held or claimed.job_id in self.orphaned
            assert not in_flight, "in-flight job delivered twice"
            job.received += 1
            assert claimed.received_count == job.received
            if job.group is not None:
                earlier = [
                    j for j in self.live.values() if j.group == job.group and j.order < job.order
                ]
                assert not earlier, "FIFO order violated"
                busy = [c.group_id for c, _ in self.held.values() if c.group_id == job.group]
                busy += [g for g, _ in self.orphaned.values() if g == job.group]
                assert not busy, "two jobs of one group in flight"
            self.held[claimed.job_id] = (claimed, self.clock.now + LEASE)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        job_id = self._pick_held(data)
        claimed, _ = self.held.pop(job_id)
        assert self.engine.ack(claimed)
        del self.live[job_id]
        self.done.add(job_id)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        job_id = self._pick_held(data)
        claimed, _ = self.held.pop(job_id)
        outcome = self.engine.fail(claimed, "boom", max_attempts=MAX_ATTEMPTS, backoff=BACKOFF)
        if self.live[job_id].received >= MAX_ATTEMPTS:
            assert outcome == "dead"
            self.dead[job_id] = self.live.pop(job_id).received
        else:
            assert outcome == "retry"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Graceful shutdown: the job is visible again and the receive does not count."""
        job_id = self._pick_held(data)
        claimed, _ = self.held.pop(job_id)
        assert self.engine.release(claimed)
        self.live[job_id].received -= 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), seconds=st.sampled_from([5, 20]))
    def extend(self, data: st.DataObject, seconds: int) -> None:
        job_id = self._pick_held(data)
        claimed, until = self.held[job_id]
        self.engine.extend(claimed, seconds)
        self.held[job_id] = (claimed, max(until, self.clock.now + seconds))

    @rule(seconds=st.sampled_from([1, 4, 6, 11, 301]))
    def tick(self, seconds: float) -> None:
        self.clock.now += seconds
        self._expire_model()

    @rule()
    def crash(self) -> None:
        """The worker dies: its leases are forgotten by us and must run out by time."""
        self.engine.close()
        self.engine = Engine(self.dir / "q.db", clock=self.clock)
        for job_id, (claimed, until) in self.held.items():
            self.orphaned[job_id] = (claimed.group_id, until)
        self.held.clear()

    def _pick_held(self, data: st.DataObject) -> str:
        """An index into the held jobs in push order (job ids are random: never draw them)."""
        held = sorted(self.held, key=lambda job_id: self.live[job_id].order)
        return held[data.draw(st.integers(0, len(held) - 1))]

    # -- checks ----------------------------------------------------------------------------

    def _expire_model(self) -> None:
        for job_id, (_, until) in list(self.held.items()):
            if until <= self.clock.now:
                del self.held[job_id]
        for job_id, (_, until) in list(self.orphaned.items()):
            if until <= self.clock.now:
                del self.orphaned[job_id]

    def _sync_dead(self, queue: str) -> None:
        """Jobs whose last lease ran out after their last attempt go to the DLQ on claim."""
        for dead in self.engine.dead_jobs(queue):
            if dead.job_id in self.live:
                job = self.live.pop(dead.job_id)
                assert job.received >= MAX_ATTEMPTS, "dead-lettered too early"
                assert dead.received_count == job.received
                self.dead[dead.job_id] = job.received

    @invariant()
    def nothing_lost(self) -> None:
        db = sqlite3.connect(self.dir / "q.db")
        try:
            live = {row[0] for row in db.execute("SELECT job_id FROM jobs")}
            dead = dict(db.execute("SELECT job_id, received_count FROM dead").fetchall())
        finally:
            db.close()
        assert live == set(self.live), "a job was lost"
        assert dead == self.dead
        assert not (self.done & (live | set(dead)))


EngineMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)
TestEngineStateMachine = EngineMachine.TestCase
