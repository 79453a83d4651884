"""The asyncio consumer over a real SQLite engine: wake-ups, concurrency, batches, shutdown, logs."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.runtime import queues
from qr.runtime.flow import RateLimit
from qr.runtime.local.engine import Claimed, Engine
from qr.runtime.local.worker import LocalQueuePort, Worker
from qr.runtime.manifest import Manifest, scan
from qr.runtime.ports import OutgoingJob, Platform, set_platform
from qr.runtime.queues import JSON
from tests.conftest import MakeProject
from tests.waiting import WAIT

FILES = {
    "queues/record.py": """
        import asyncio
        seen = []
        async def handler(payload, job):
            seen.append((payload, job.received_count))
            return {"echo": payload}
    """,
    "queues/gated.py": """
        import asyncio
        config = {"concurrency": 3, "batch_size": 2, "timeout": 60}
        gate = None
        running = []
        peak = [0]
        async def handler(payload):
            running.append(payload)
            peak[0] = max(peak[0], len(running))
            await gate.wait()
            running.remove(payload)
    """,
    "queues/flaky.py": """
        config = {"max_attempts": 2, "backoff": {"strategy": "fixed", "initial": 0, "max": 0}}
        def handler(payload):
            raise RuntimeError(f"cannot handle {payload}")
    """,
    "queues/chain.py": """
        from qr.runtime import queues
        def handler(payload):
            if payload < 3:
                queues["chain"].push(payload + 1)
    """,
}


class CountingEngine(Engine):
    """The real engine, remembering each claim's size (to observe batching)."""

    claims: list[int]

    def claim(
        self,
        queue: str,
        limit: int,
        lease: float,
        *,
        max_attempts: int = 3,
        rate_limit: RateLimit | None = None,
    ) -> list[Claimed]:
        got = super().claim(queue, limit, lease, max_attempts=max_attempts, rate_limit=rate_limit)
        if queue == "gated" and got:
            self.claims.append(len(got))
        return got


@pytest.fixture
def manifest(make_project: MakeProject) -> Manifest:
    return scan(make_project(FILES))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = CountingEngine(tmp_path / "queues.db")
    engine.claims = []
    yield engine
    engine.close()


@pytest.fixture
def platform(engine: Engine, manifest: Manifest) -> Iterator[Platform]:
    platform = Platform(
        "local",
        LocalQueuePort(engine),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        queue_names=frozenset(q.name for q in manifest.queues),
    )
    previous = set_platform(platform)
    yield platform
    set_platform(previous)


def module(manifest: Manifest, name: str) -> Any:
    found = manifest.queue(name)
    assert found is not None
    return sys.modules[found.module]


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.002)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def test_in_process_push_wakes_the_worker(
    manifest: Manifest, engine: Engine, platform: Platform
) -> None:
    record = module(manifest, "record")
    worker = Worker(engine, manifest.queues, poll_interval=3600)  # no polling: only the wake-up

    async def main() -> None:
        worker.start()
        await asyncio.sleep(0.01)
        job_id = queues["record"].push("hello")
        await until(lambda: record.seen == [("hello", 1)], "the job to run")
        await until(lambda: engine.result(job_id) == {"echo": "hello"}, "its result")
        await worker.stop()

    run(main)


def test_push_from_a_sync_handler_thread_wakes_the_worker(
    manifest: Manifest, engine: Engine, platform: Platform
) -> None:
    worker = Worker(engine, manifest.queues, poll_interval=3600)

    async def main() -> None:
        worker.start()
        queues["chain"].push(0)
        await until(
            lambda: engine.stats(["chain"])[0].depth == 0 and not worker._running, "the chain"
        )
        await worker.stop()

    run(main)
    assert engine.stats(["chain"])[0].to_dict()["depth"] == 0


def test_another_connection_push_is_noticed_through_data_version(
    manifest: Manifest, engine: Engine, tmp_path: Path
) -> None:
    record = module(manifest, "record")
    other = Engine(tmp_path / "queues.db")  # as the `qr dev queue` process would
    worker = Worker(engine, manifest.queues, poll_interval=0.005)

    async def main() -> None:
        worker.start()
        await asyncio.sleep(0.01)
        other.push(OutgoingJob("record", '"from elsewhere"', JSON))
        await until(lambda: record.seen == [("from elsewhere", 1)], "the pushed job to run")
        await worker.stop()

    run(main)


def test_concurrency_and_batch_size_are_honoured(
    manifest: Manifest, engine: CountingEngine, platform: Platform
) -> None:
    gated = module(manifest, "gated")

    async def main() -> None:
        gated.gate = asyncio.Event()
        worker = Worker(engine, manifest.queues)
        for i in range(7):
            queues["gated"].push(i)
        worker.start()
        await until(lambda: len(gated.running) == 3, "3 jobs running")
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(gated.running) == 3
        gated.gate.set()
        await until(
            lambda: engine.stats(["gated"])[0].depth == 0 and not worker._running, "the queue"
        )
        await worker.stop()

    run(main)
    assert gated.peak == [3]
    assert max(engine.claims) == 2 and sum(engine.claims) == 7


def test_failures_retry_then_dead_letter_with_log_lines(
    manifest: Manifest, engine: Engine, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(engine, manifest.queues)

    async def main() -> None:
        worker.start()
        job_id = queues["flaky"].push("x")
        await until(lambda: bool(engine.dead_jobs("flaky")), "the dead letter")
        await worker.stop()
        (dead,) = engine.dead_jobs("flaky")
        assert (dead.job_id, dead.received_count) == (job_id, 2)
        assert "RuntimeError: cannot handle x" in (dead.last_error or "")
        assert 'queues/flaky.py", line 3, in handler' in (dead.last_error or "")
        assert "qr/runtime" not in (dead.last_error or "")

    with caplog.at_level(logging.INFO, logger="qr.queues"):
        run(main)
    lines = [r for r in caplog.records if r.name == "qr.queues"]
    assert [r.__dict__["outcome"] for r in lines] == ["retry", "dead"]
    first = lines[0]
    assert first.__dict__["queue"] == "flaky" and first.__dict__["attempt"] == 1
    assert first.getMessage().startswith(f"flaky job {first.__dict__['job_id']} retry in ")
    assert "ms (attempt 1): RuntimeError: cannot handle x" in first.getMessage()


def test_graceful_shutdown_returns_in_flight_jobs(
    manifest: Manifest, engine: Engine, platform: Platform
) -> None:
    gated = module(manifest, "gated")

    async def main() -> None:
        gated.gate = asyncio.Event()
        worker = Worker(engine, manifest.queues)
        worker.start()
        queues["gated"].push("a")
        queues["gated"].push("b")
        await until(lambda: len(gated.running) == 2, "2 jobs running")
        await worker.stop(grace=0.01)

    run(main)
    stats = engine.stats(["gated"])[0]
    assert (stats.depth, stats.in_flight) == (2, 0)
    # the interrupted runs count, as on SQS when the consumer goes away mid-job
    assert [c.received_count for c in engine.claim("gated", 10, 30)] == [2, 2]


def test_drain_runs_everything_claimable(
    manifest: Manifest, engine: Engine, platform: Platform
) -> None:
    record = module(manifest, "record")
    worker = Worker(engine, manifest.queues)
    queues["record"].push(1)
    queues["chain"].push(0)
    queues["flaky"].push("y")
    outcomes = asyncio.run(worker.drain())
    assert sorted((o.queue, o.outcome) for o in outcomes) == [
        ("chain", "ok"),
        ("chain", "ok"),
        ("chain", "ok"),
        ("chain", "ok"),
        ("flaky", "dead"),
        ("flaky", "retry"),
        ("record", "ok"),
    ]
    assert record.seen == [(1, 1)]
    only = asyncio.run(worker.drain(["record"]))
    assert only == []


def test_a_stopped_worker_can_start_again(
    manifest: Manifest, engine: Engine, platform: Platform
) -> None:
    record = module(manifest, "record")
    worker = Worker(engine, manifest.queues, poll_interval=3600)

    async def main() -> None:
        worker.start()
        await worker.stop()
        queues["record"].push("while stopped")
        worker.start()
        await until(lambda: record.seen == [("while stopped", 1)], "the job pushed while stopped")
        queues["record"].push("woken")
        await until(lambda: len(record.seen) == 2, "the second job")
        await worker.stop()

    run(main)
