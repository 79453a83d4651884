"""kill -9 a worker process mid-way through 1,000 jobs, twice, and check what the engine promises.

The victim (``_crash_worker.py``) runs the real worker over a standard queue and a FIFO queue
(10 groups); about one job in ten always fails. Every handler run is written to a ledger database
(job, attempt, pid) before the handler returns. After the last restart drains everything:

* every job is either done (deleted, its result kept) or in the DLQ with ``max_attempts`` receives;
  none is left and none is both;
* a job ran again only after a kill (a redelivery with a higher attempt, never two at once), and
  a successful job was never run again after it was done;
* within each FIFO group, jobs first ran in push order;
* job state: once a killed worker's leases run out, no job reads ``running`` (the ones it held
  read ``queued`` with their attempt counted); at the end every job reads ``succeeded`` with its
  result and the attempt that succeeded, or ``dead`` with ``max_attempts`` attempts and its error.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from qr.runtime.local.engine import Engine
from qr.runtime.queues import Queue
from tests.conftest import MakeProject
from tests.waiting import Lines, exited

JOBS = 1000
MAX_ATTEMPTS = 3
HANDLER = """
import asyncio, os, sqlite3
config = {"timeout": 1, "max_attempts": 3, "backoff": {"strategy": "fixed", "initial": 0, "max": 0}}
ledger = sqlite3.connect(os.environ["LEDGER"], isolation_level=None, timeout=30)
ledger.execute("PRAGMA journal_mode=WAL")
ledger.execute("CREATE TABLE IF NOT EXISTS runs(n INTEGER PRIMARY KEY, job_id, idx, grp, attempt, pid, ok)")
async def handler(payload, job):
    await asyncio.sleep(0.01)
    ok = not payload["fail"]
    ledger.execute("INSERT INTO runs(job_id, idx, grp, attempt, pid, ok) VALUES(?,?,?,?,?,?)",
                   (job.job_id, payload["i"], job.group_id, job.received_count, os.getpid(), ok))
    if not ok:
        raise RuntimeError(f"job {payload['i']} always fails")
    return payload["i"]
"""


def _start(root: Path, db: Path, ledger: Path) -> subprocess.Popen[str]:
    script = Path(__file__).with_name("_crash_worker.py")
    with (ledger.parent / "worker.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), str(root), str(db)],
            env={**os.environ, "LEDGER": str(ledger), "PYTHONPATH": os.pathsep.join(sys.path)},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    try:
        Lines(process.stdout, "worker's stdout").wait_for(
            lambda line: line.strip() == "ready", f"the worker to start (log: {log.name})"
        )
    except BaseException:
        process.kill()
        raise
    return process


def _runs(ledger: Path) -> list[tuple[str, int, str | None, int, int, int]]:
    if not ledger.exists():
        return []
    db = sqlite3.connect(ledger, timeout=30)
    try:
        return db.execute(
            "SELECT job_id, idx, grp, attempt, pid, ok FROM runs ORDER BY n"
        ).fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        db.close()


def _wait(condition: object, what: str, limit: float = 120) -> None:
    give_up = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > give_up:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_way_loses_nothing_and_keeps_fifo_order(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"queues/plain.py": HANDLER, "queues/ordered.fifo.py": HANDLER})
    db, ledger = tmp_path / "queues.db", tmp_path / "ledger.db"
    engine = Engine(db)
    pushed: dict[str, tuple[int, str | None, bool]] = {}
    for i in range(JOBS):
        fail = i % 10 == 7
        target = Queue("ordered.fifo").group(f"g{i // 2 % 10}") if i % 2 else Queue("plain")
        payload = {"i": i, "fail": fail}
        job_id = engine.push(target.prepare(payload)).job_id
        pushed[job_id] = (i, target.group_id, fail)

    kills = 0
    held_at_kills: dict[str, int] = {}
    for threshold in (JOBS // 4, JOBS // 2):
        process = _start(root, db, ledger)
        _wait(lambda t=threshold: len(_runs(ledger)) >= t, f"{threshold} runs")
        process.send_signal(signal.SIGKILL)
        exited(process, "the killed worker")
        kills += 1
        held = {s.job_id: s.attempts for s in engine.job_states(status="running", limit=JOBS)}
        held_at_kills.update(held)
        with sqlite3.connect(db) as raw:
            lease_end = raw.execute(
                "SELECT MAX(visible_ms) FROM jobs WHERE receipt IS NOT NULL"
            ).fetchone()[0]
        if lease_end is not None:
            _wait(lambda end=lease_end: engine.now_ms() > end, "the killed worker's leases")
        states = {s.job_id: s for s in engine.job_states(limit=JOBS)}
        assert [s.job_id for s in states.values() if s.status == "running"] == []
        for job_id, count in held.items():
            assert (states[job_id].status, states[job_id].attempts) == ("queued", count)
    assert held_at_kills  # the kills found jobs running
    process = _start(root, db, ledger)
    try:
        _wait(
            lambda: all(s.depth + s.in_flight + s.delayed == 0 for s in engine.stats()),
            "the queues to drain",
        )
    finally:
        process.terminate()
        exited(process, "the last worker after SIGTERM")

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        left = raw.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert left == 0
    final = {s.job_id: s for s in engine.job_states(limit=JOBS + 1)}
    assert len(final) == JOBS
    results = {job_id: s.result for job_id, s in final.items() if s.status == "succeeded"}
    dead = {d.job_id: d for q in ("plain", "ordered.fifo") for d in engine.dead_jobs(q)}

    # Done or dead-lettered, never both, never neither; failures exhaust exactly max_attempts.
    for job_id, (index, _group, fail) in pushed.items():
        if fail:
            assert job_id in dead and job_id not in results, index
            assert dead[job_id].received_count == MAX_ATTEMPTS, index
            assert f"job {index} always fails" in (dead[job_id].last_error or "")
            state = final[job_id]
            assert (state.status, state.attempts) == ("dead", MAX_ATTEMPTS), index
            assert state.error is not None and state.error["type"] == "RuntimeError"
        else:
            assert job_id not in dead, index
            assert results[job_id] == index, index
    assert len(results) + len(dead) == JOBS

    runs = _runs(ledger)
    by_job: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for job_id, _idx, _grp, attempt, pid, ok in runs:
        by_job[job_id].append((attempt, pid, ok))
    assert set(by_job) == set(pushed)
    pids = [pid for *_, pid, _ok in runs]
    processes = list(dict.fromkeys(pids))
    assert len(processes) == kills + 1
    for job_id, attempts in by_job.items():  # the state's attempt is the one that finished it
        if not pushed[job_id][2]:
            succeeded = [a for a, _pid, ok in attempts if ok]
            assert final[job_id].attempts == succeeded[-1], pushed[job_id][0]
    redelivered = 0
    interrupted = 0  # jobs whose first receive died with a killed process
    for job_id, attempts in by_job.items():
        numbers = [a for a, _, _ in attempts]
        assert numbers == sorted(set(numbers)), f"job {job_id} ran twice in one attempt"
        if not pushed[job_id][2]:
            assert sum(ok for *_, ok in attempts) >= 1
            interrupted += attempts[0][0] > 1
            if len(attempts) > 1:
                # Ran again only because the process holding it was killed before its ack.
                assert all(pid != processes[-1] for _, pid, _ in attempts[:-1])
                redelivered += 1
    assert redelivered <= kills * 20  # at most the jobs in flight at each kill
    assert interrupted >= 1  # the kills did land mid-job

    # FIFO: within each group, jobs first started in push order.
    first_seen: dict[str | None, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for job_id, idx, grp, *_ in runs:
        if grp is not None and job_id not in seen:
            first_seen[grp].append(idx)
        seen.add(job_id)
    assert len(first_seen) == 10
    for group, order in first_seen.items():
        assert order == sorted(order), f"group {group} ran out of order"
