"""Schedules firing while ``qr dev`` runs.

The scheduler keeps the next run of every schedule (``ScheduleExpression.next_run``: cronsim for
cron, rates counted from when the server started, all in UTC). Its loop sleeps until the earliest
one is due (at most ``tick`` seconds, so a reload that adds a schedule is noticed), starts each
due run as a task, and moves that schedule to its following run; runs missed while the machine
slept are skipped, not replayed (EventBridge Scheduler does not catch up either).

Time comes from a ``SchedulerClock``: the real UTC clock, or one that runs ``scale`` times faster
(``QR_DEV_CLOCK_SCALE``), so tests can watch ``rate(1 minute)`` fire in a second through the real
loop. ``fire(name)`` runs a schedule now (``qr dev schedule NAME``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qr.runtime.manifest import Manifest, Schedule

HISTORY = 100
"""Runs the scheduler remembers (all schedules together)."""

log = logging.getLogger("qr.schedules")

Runner = Callable[[Schedule, str, datetime], Awaitable[object]]
Report = Callable[[str, str, float, "str | None", "datetime | None"], None]


class SchedulerClock:
    """UTC now, optionally ``scale`` times faster than real time from when it was made."""

    def __init__(
        self,
        scale: float = 1.0,
        *,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scale = scale
        self._wall = wall
        self._monotonic = monotonic
        self._origin = wall()
        self._origin_monotonic = monotonic()

    def now(self) -> datetime:
        if self.scale == 1.0:
            return self._wall()
        elapsed = (self._monotonic() - self._origin_monotonic) * self.scale
        return self._origin + timedelta(seconds=elapsed)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self.scale


@dataclass(frozen=True)
class RunResult:
    name: str
    job_id: str
    scheduled_at: datetime
    duration: float
    error: str | None
    next_run: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "job_id": self.job_id,
            "scheduled_at": self.scheduled_at.isoformat(),
            "ok": self.error is None,
            "error": self.error,
            "duration_ms": round(self.duration * 1000, 3),
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }


class Scheduler:
    def __init__(
        self,
        manifest: Manifest,
        runner: Runner,
        *,
        report: Report | None = None,
        clock: SchedulerClock | None = None,
        tick: float = 0.5,
    ) -> None:
        self.runner = runner
        self.report = report
        self.clock = clock or SchedulerClock()
        self.tick = tick
        self.started = self.clock.now()
        self.schedules: dict[str, Schedule] = {}
        self.next: dict[str, datetime | None] = {}
        self.running: set[asyncio.Task[RunResult]] = set()
        self.history: deque[RunResult] = deque(maxlen=HISTORY)
        """The last runs, oldest first (the dashboard's Schedules page)."""
        self._wake = asyncio.Event()
        self.update(manifest)

    def update(self, manifest: Manifest) -> None:
        """Take a (re)loaded manifest; unchanged schedules keep their next run."""
        now = self.clock.now()
        fresh = {s.name: s for s in manifest.schedules}
        next_runs: dict[str, datetime | None] = {}
        for name, schedule in fresh.items():
            old = self.schedules.get(name)
            if old is not None and old.expression == schedule.expression and name in self.next:
                next_runs[name] = self.next[name]
            else:
                next_runs[name] = schedule.expression.next_run(now, started=self.started)
        self.schedules, self.next = fresh, next_runs
        self._wake.set()

    async def run(self) -> None:
        """Fire schedules on time until cancelled."""
        while True:
            for schedule, at in self.due(self.clock.now()):
                self._start(schedule, at)
            upcoming = [at for at in self.next.values() if at is not None]
            wait = self.tick
            if upcoming:
                until = (min(upcoming) - self.clock.now()).total_seconds()
                wait = max(0.0, min(self.tick, self.clock.real_seconds(until)))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def due(self, now: datetime) -> list[tuple[Schedule, datetime]]:
        """The runs due at ``now`` (each schedule moves on to its following run)."""
        runs: list[tuple[Schedule, datetime]] = []
        for name, at in list(self.next.items()):
            if at is not None and at <= now:
                schedule = self.schedules[name]
                self.next[name] = schedule.expression.next_run(now, started=self.started)
                runs.append((schedule, at))
        return runs

    async def fire(self, name: str) -> RunResult:
        """Run ``name`` now (it keeps its regular next run)."""
        schedule = self.schedules.get(name)
        if schedule is None:
            raise KeyError(name)
        return await self._run(schedule, self.clock.now())

    async def stop(self, grace: float = 5.0) -> None:
        """Let running schedule jobs finish for ``grace`` seconds, then cancel them."""
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace)
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

    def _start(self, schedule: Schedule, scheduled_at: datetime) -> None:
        task = asyncio.create_task(self._run(schedule, scheduled_at), name=f"qr-{schedule.name}")
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _run(self, schedule: Schedule, scheduled_at: datetime) -> RunResult:
        job_id = uuid.uuid4().hex
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.runner(schedule, job_id, scheduled_at)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            text = "".join(traceback.format_exception(exc)).rstrip()
            log.error("%s job %s failed:\n%s", schedule.name, job_id, text)
        result = RunResult(
            schedule.name,
            job_id,
            scheduled_at,
            time.perf_counter() - started,
            error,
            self.next.get(schedule.name),
        )
        self.history.append(result)
        if self.report is not None:
            self.report(result.name, result.job_id, result.duration, result.error, result.next_run)
        return result
