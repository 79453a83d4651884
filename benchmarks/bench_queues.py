"""The local queue engine end to end, against a minimal raw-SQLite claim/ack loop in the same run.

Goals (issue 4): >= 5,000 no-op jobs/s durable end to end (push -> handler -> ack) and >= 0.5x
the raw loop; enqueue -> handler start p50 <= 2 ms; memory flat over 100,000 jobs. Issue 13: with
job state kept (the default) >= 0.85x the same run with ``keep_results = 0``.

1. raw: the least a durable SQLite queue can do here: WAL, synchronous=NORMAL, one transaction
   per push, claim 10 per transaction, one transaction per ack; no Python job machinery at all.
2. qr: the same N jobs pushed through ``queues[...].push`` (validation, encoding, the port) and run
   by the ``Worker`` (claim batches, a task per job, ``run_queue_job`` with injection and a
   deadline, ack, a log call), async and sync no-op handlers, with job state kept; and the async
   one again on a queue with ``keep_results = 0`` (no state written).
3. latency: one job at a time into an idle worker; time from push() to the handler's first line.
4. memory: 100,000 jobs in rounds of 10,000; RSS after each round.

Nothing asserts on time; the ratios are what to compare between machines.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from qr.runtime import queues
from qr.runtime.local.engine import Engine
from qr.runtime.local.worker import LocalQueuePort, Worker
from qr.runtime.manifest import Manifest, scan
from qr.runtime.ports import Platform, set_platform

N = int(os.environ.get("QR_BENCH_JOBS", "10000"))
ROUNDS = 3
HANDLERS = {
    "noop_async.py": (
        "config = {'concurrency': 50, 'batch_size': 10}\ndone = [0]\n"
        "async def handler(payload):\n    done[0] += 1\n"
    ),
    "noop_nostate.py": (
        "config = {'concurrency': 50, 'batch_size': 10, 'keep_results': 0}\ndone = [0]\n"
        "async def handler(payload):\n    done[0] += 1\n"
    ),
    "noop_sync.py": (
        "config = {'concurrency': 50, 'batch_size': 10}\ndone = [0]\n"
        "def handler(payload):\n    done[0] += 1\n"
    ),
    "probe.py": (
        "import time\nstarted = []\nasync def handler(payload):\n"
        "    started.append(time.perf_counter())\n"
    ),
}


def raw_loop(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, body TEXT, visible INTEGER, receipt TEXT)"
    )
    db.execute("CREATE INDEX ready ON jobs(visible, id)")
    started = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO jobs(body, visible) VALUES(?, ?)", (f'{{"i":{i}}}', 0))
        db.execute("COMMIT")
    done = 0
    while done < n:
        now = int(time.time() * 1000)
        receipt = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        ids = [
            r[0]
            for r in db.execute(
                "SELECT id FROM jobs WHERE visible<=? ORDER BY visible, id LIMIT 10", (now,)
            )
        ]
        db.executemany(
            "UPDATE jobs SET visible=?, receipt=? WHERE id=?",
            [(now + 30000, receipt, i) for i in ids],
        )
        db.execute("COMMIT")
        for job_id in ids:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM jobs WHERE id=? AND receipt=?", (job_id, receipt))
            db.execute("COMMIT")
        done += len(ids)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def qr_run(engine: Engine, manifest: Manifest, queue: str, n: int) -> tuple[float, float]:
    """Seconds to push ``n`` jobs, then seconds for the worker to finish them."""
    started = time.perf_counter()
    target = queues[queue]
    for i in range(n):
        target.push({"i": i})
    pushed = time.perf_counter()
    done = sys.modules[next(q.module for q in manifest.queues if q.name == queue)].done
    done[0] = 0
    worker = Worker(engine, [q for q in manifest.queues if q.name == queue])
    worker.start()
    while done[0] < n or worker._running:
        await asyncio.sleep(0.005)
    finished = time.perf_counter()
    await worker.stop()
    return pushed - started, finished - pushed


async def latency(engine: Engine, manifest: Manifest, samples: int) -> list[float]:
    probe = sys.modules[next(q.module for q in manifest.queues if q.name == "probe")]
    worker = Worker(engine, [q for q in manifest.queues if q.name == "probe"], poll_interval=1)
    worker.start()
    await asyncio.sleep(0.05)
    waits: list[float] = []
    target = queues["probe"]
    for i in range(samples):
        before = time.perf_counter()
        target.push(i)
        while len(probe.started) <= i:
            await asyncio.sleep(0)
        waits.append((probe.started[i] - before) * 1000)
    await worker.stop()
    return waits


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def memory(engine: Engine, manifest: Manifest, total: int) -> list[float]:
    readings: list[float] = []
    for _ in range(total // 10_000):
        await qr_run(engine, manifest, "noop_async", 10_000)
        readings.append(rss_mb())
    return readings


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "proj"
        (root / "queues").mkdir(parents=True)
        for name, text in HANDLERS.items():
            (root / "queues" / name).write_text(text)
        manifest = scan(root)
        keep = {q.name: float(q.config.keep_results) for q in manifest.queues}
        engine = Engine(Path(scratch) / "queues.db", keep_results=keep)
        set_platform(
            Platform(
                "local",
                LocalQueuePort(engine),
                None,  # type: ignore[arg-type]
                None,  # type: ignore[arg-type]
                queue_names=frozenset(q.name for q in manifest.queues),
            )
        )
        # Alternating rounds, best of each: the machine is shared, so the least disturbed round
        # of each variant is the fairest comparison.
        raw_rate = 0.0
        best: dict[str, tuple[float, float]] = {}  # queue -> (push s, run s) of its best round
        for round_ in range(ROUNDS):
            raw_rate = max(raw_rate, N / raw_loop(Path(scratch) / f"raw{round_}.db", N))
            for queue in ("noop_async", "noop_nostate", "noop_sync"):
                push, run = asyncio.run(qr_run(engine, manifest, queue, N))
                if queue not in best or push + run < sum(best[queue]):
                    best[queue] = (push, run)
        print(f"jobs: {N:,} no-op per round, durable (WAL, synchronous=NORMAL), best of {ROUNDS}")
        print(f"raw SQLite push+claim+ack loop   {raw_rate:>9,.0f} jobs/s")
        for queue, label in (
            ("noop_async", "async"),
            ("noop_nostate", "async, keep_results=0"),
            ("noop_sync", "sync"),
        ):
            push, run = best[queue]
            push_rate, run_rate, rate = N / push, N / run, N / (push + run)
            print(
                f"qr end to end, {label:<21} handler {rate:>9,.0f} jobs/s  ({rate / raw_rate:.2f}x raw;"
                f" push {push_rate:,.0f}/s, run {run_rate:,.0f}/s)"
            )
        kept, none = (N / sum(best[q]) for q in ("noop_async", "noop_nostate"))
        print(f"job state kept vs keep_results=0 (async)   {kept / none:.2f}x  (goal >= 0.85x)")
        waits = asyncio.run(latency(engine, manifest, 1000))
        cuts = statistics.quantiles(waits, n=100)
        print(f"enqueue -> handler start          p50 {cuts[49]:.3f} ms, p99 {cuts[98]:.3f} ms")
        readings = asyncio.run(memory(engine, manifest, 100_000))
        print(
            "RSS over 100,000 jobs (MB, every 10,000): "
            + " ".join(f"{r:.1f}" for r in readings)
            + f"  (growth after the first round: {readings[-1] - readings[0]:+.1f} MB)"
        )
        engine.close()


if __name__ == "__main__":
    main()
