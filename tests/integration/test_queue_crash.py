"""kill -9 a worker process mid-way through 1,000 jobs, twice, and check what the engine promises.

The victim (``_crash_worker.py``) runs the real worker over a standard queue, a FIFO queue
(10 groups) and a rate-limited standard queue (its limit is reached: jobs wait for tokens across
the kills); about one job in ten always fails. 20 debounce keys get three pushes each: only each
key's last push may ever run. Every handler run is written to a ledger database
(job, attempt, pid) before the handler returns. Each kill lands mid-job by construction: the
worker is started with a marker path and an index; the first job from that index on (first
attempt, one that would succeed) writes the marker, and from then on every job the worker starts
holds on, extending its lease, until the process dies (jobs already past that point finish, so
the kill still finds the worker busy, and the next worker is left work to be killed in). The test
kills the worker once the marker is there. After the last restart drains everything:

* every job is either done (deleted, its result kept) or in the DLQ with ``max_attempts`` receives
  (its last error the handler's, or the lease running out when a kill ended its last receive);
  none is left and none is both;
* a job ran again only after a kill (a redelivery with a higher attempt, never two at once), and
  a successful job was never run again after it was done;
* the job each killed worker was holding never finished in that process and ran to the end
  later, as a redelivery;
* within each FIFO group, jobs first ran in push order;
* job state: once a killed worker's leases run out, no job reads ``running`` (the ones it held
  read ``queued`` with their attempt counted, or ``dead`` if that was their last attempt); at the end every job reads ``succeeded`` with its
  result and the attempt that succeeded, or ``dead`` with ``max_attempts`` attempts and that error.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qr.runtime.local.engine import Engine
from qr.runtime.queues import Queue
from tests.conftest import MakeProject
from tests.waiting import WAIT, Lines, exited, reaped, until

JOBS = 1000
LIMITED_JOBS = 300
MAX_ATTEMPTS = 3
HANDLER = """
import asyncio, json, os, sqlite3
config = {"timeout": 1, "max_attempts": 3, "backoff": {"strategy": "fixed", "initial": 0, "max": 0}}
ledger = sqlite3.connect(os.environ["LEDGER"], isolation_level=None, timeout=30)
ledger.execute("PRAGMA journal_mode=WAL")
ledger.execute("CREATE TABLE IF NOT EXISTS runs(n INTEGER PRIMARY KEY, job_id, idx, grp, attempt, pid, ok)")
HOLD, HOLD_FROM = os.environ.get("HOLD_MARKER"), int(os.environ.get("HOLD_FROM", "0"))
async def handler(payload, job):
    if HOLD and not os.path.exists(HOLD):
        if payload["i"] >= HOLD_FROM and not payload["fail"] and job.received_count == 1:
            with open(HOLD + ".tmp", "w") as marker:
                json.dump({"job_id": job.job_id, "i": payload["i"], "pid": os.getpid()}, marker)
            os.replace(HOLD + ".tmp", HOLD)
    if HOLD and os.path.exists(HOLD):
        while True:  # every job from here on keeps its lease until this process is killed
            job.extend(5)
            await asyncio.sleep(1)
    await asyncio.sleep(0.01)
    ok = not payload["fail"]
    ledger.execute("INSERT INTO runs(job_id, idx, grp, attempt, pid, ok) VALUES(?,?,?,?,?,?)",
                   (job.job_id, payload["i"], job.group_id, job.received_count, os.getpid(), ok))
    if not ok:
        raise RuntimeError(f"job {payload['i']} always fails")
    return payload["i"]
"""


def _start(
    root: Path, db: Path, ledger: Path, hold: tuple[Path, int] | None = None
) -> subprocess.Popen[str]:
    """A worker process; with ``hold=(marker, index)`` it holds the first job from ``index`` on
    (see the module docstring)."""
    script = Path(__file__).with_name("_crash_worker.py")
    env = {**os.environ, "LEDGER": str(ledger), "PYTHONPATH": os.pathsep.join(sys.path)}
    if hold is not None:
        env.update(HOLD_MARKER=str(hold[0]), HOLD_FROM=str(hold[1]))
    with (ledger.parent / "worker.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), str(root), str(db)],
            env=env,
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


def _wait(condition: Callable[..., object], what: str, log: Path | None = None) -> None:
    """``until``, with the workers' stderr (``log``) shown when it gives up."""
    output = (lambda: log.read_text(errors="replace")) if log else None
    until(condition, what, WAIT, interval=0.01, output=output)


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_way_loses_nothing_and_keeps_fifo_order(
    make_project: MakeProject, tmp_path: Path
) -> None:
    limited = HANDLER.replace("config = {", 'config = {"rate_limit": {"limit": 100, "per": 1}, ')
    root = make_project(
        {
            "queues/plain.py": HANDLER,
            "queues/ordered.fifo.py": HANDLER,
            "queues/limited.py": limited,
        }
    )
    db, ledger = tmp_path / "queues.db", tmp_path / "ledger.db"
    engine = Engine(db)
    pushed: dict[str, tuple[int, str | None, bool]] = {}
    for i in range(JOBS):
        fail = i % 10 == 7
        target = Queue("ordered.fifo").group(f"g{i // 2 % 10}") if i % 2 else Queue("plain")
        payload = {"i": i, "fail": fail}
        job_id = engine.push(target.prepare(payload)).job_id
        pushed[job_id] = (i, target.group_id, fail)
    # negative indices: these never start a hold (the kills' threshold counts the first queues)
    for i in range(-1, -LIMITED_JOBS - 1, -1):
        fail = i % 10 == 7
        job_id = engine.push(Queue("limited").prepare({"i": i, "fail": fail})).job_id
        pushed[job_id] = (i, None, fail)
    superseded: set[str] = set()
    for key in range(20):
        ids = []
        for version in range(3):
            i = -LIMITED_JOBS - 1 - (key * 3 + version)
            debounced = Queue("plain").debounce(f"key-{key}", seconds=0.05)
            ids.append(engine.push(debounced.prepare({"i": i, "fail": False})).job_id)
        superseded.update(ids[:-1])
        pushed[ids[-1]] = (i, None, False)
    everything = len(pushed) + len(superseded)

    kills = 0
    held_at_kills: dict[str, int] = {}
    mid_job: list[dict[str, Any]] = []  # the job each killed worker was running when killed
    killed: list[int] = []  # their pids
    for threshold in (JOBS // 4, JOBS // 2):
        marker = tmp_path / f"holding-from-{threshold}.json"
        process = _start(root, db, ledger, hold=(marker, threshold))
        with reaped(process):
            _wait(marker.exists, f"a job from #{threshold} on to be held", tmp_path / "worker.log")
            process.send_signal(signal.SIGKILL)
            exited(process, "the killed worker")
        mid_job.append(json.loads(marker.read_text()))
        killed.append(process.pid)
        kills += 1
        held = {s.job_id: s.attempts for s in engine.job_states(status="running", limit=everything)}
        held_at_kills.update(held)
        with sqlite3.connect(db) as raw:
            lease_end = raw.execute(
                "SELECT MAX(visible_ms) FROM jobs WHERE receipt IS NOT NULL"
            ).fetchone()[0]
        if lease_end is not None:
            _wait(lambda end=lease_end: engine.now_ms() > end, "the killed worker's leases")
        states = {s.job_id: s for s in engine.job_states(limit=everything)}
        assert [s.job_id for s in states.values() if s.status == "running"] == []
        for job_id, count in held.items():  # (dead when the killed receive was its last one)
            after = (states[job_id].status, states[job_id].attempts)
            assert after in (("queued", count), ("dead", MAX_ATTEMPTS)), (job_id, count, after)
    assert held_at_kills  # the kills found jobs running
    process = _start(root, db, ledger)
    with reaped(process):
        _wait(
            lambda: all(s.depth + s.in_flight + s.delayed == 0 for s in engine.stats()),
            "the queues to drain",
            tmp_path / "worker.log",
        )
        process.terminate()
        exited(process, "the last worker after SIGTERM")

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        left = raw.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert left == 0
    final = {s.job_id: s for s in engine.job_states(limit=everything + 1)}
    assert {final.pop(job_id).status for job_id in superseded} == {"cancelled"}
    assert len(final) == len(pushed)
    results = {job_id: s.result for job_id, s in final.items() if s.status == "succeeded"}
    dead = {d.job_id: d for q in ("plain", "ordered.fifo", "limited") for d in engine.dead_jobs(q)}

    # Done or dead-lettered, never both, never neither; failures exhaust exactly max_attempts.
    runs = _runs(ledger)
    by_job: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for job_id, _idx, _grp, attempt, pid, ok in runs:
        by_job[job_id].append((attempt, pid, ok))
    assert set(by_job) == set(pushed)
    assert not superseded & set(by_job)  # a debounced push that was replaced never ran

    for job_id, (index, _group, fail) in pushed.items():
        if fail:
            assert job_id in dead and job_id not in results, index
            assert dead[job_id].received_count == MAX_ATTEMPTS, index
            state = final[job_id]
            assert (state.status, state.attempts) == ("dead", MAX_ATTEMPTS), index
            assert state.error is not None
            # Its last receive raised, or a kill ended that receive and its lease ran out.
            last = [pid for attempt, pid, _ok in by_job[job_id] if attempt == MAX_ATTEMPTS]
            if state.error["type"] == "LeaseExpired":
                assert not last or last[0] in killed, (index, state.error)
            else:
                assert state.error["type"] == "RuntimeError", (index, state.error)
                assert f"job {index} always fails" in (dead[job_id].last_error or ""), index
        else:
            assert job_id not in dead, index
            assert results[job_id] == index, index
    assert len(results) + len(dead) == len(pushed)
    pids = [pid for *_, pid, _ok in runs]
    processes = list(dict.fromkeys(pids))
    assert len(processes) == kills + 1
    for job_id, attempts in by_job.items():  # the state's attempt is the one that finished it
        if not pushed[job_id][2]:
            succeeded = [a for a, _pid, ok in attempts if ok]
            assert final[job_id].attempts == succeeded[-1], pushed[job_id][0]
    redelivered = 0
    for job_id, attempts in by_job.items():
        numbers = [a for a, _, _ in attempts]
        assert numbers == sorted(set(numbers)), f"job {job_id} ran twice in one attempt"
        if not pushed[job_id][2]:
            assert sum(ok for *_, ok in attempts) >= 1
            if len(attempts) > 1:
                # Ran again only because the process holding it was killed before its ack.
                assert all(pid != processes[-1] for _, pid, _ in attempts[:-1])
                redelivered += 1
    assert redelivered <= kills * 30  # at most the jobs in flight at each kill (10 per queue)
    # Each kill landed mid-job: the held job never finished in the killed process; it was
    # received again and finished later.
    for holding in mid_job:
        attempts = by_job[holding["job_id"]]
        assert all(pid != holding["pid"] for _, pid, _ in attempts), holding
        assert attempts[0][0] > 1 and attempts[-1][2], holding

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
