"""The dev scheduler's timing, driven by an injected clock (no waiting)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from qr.cli.dev.scheduler import Scheduler, SchedulerClock
from qr.runtime.manifest import Manifest, scan
from qr.runtime.manifest import Schedule as ScheduleSpec
from tests.conftest import MakeProject

START = datetime(2026, 3, 2, 8, 59, 30, tzinfo=UTC)


class FakeTime:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds


def project(make_project: MakeProject, **schedules: str) -> Manifest:
    files = {
        f"schedules/{name}.py": f"schedule = {expression!r}\n\ndef handler(job):\n    return job.schedule_name\n"
        for name, expression in schedules.items()
    }
    return scan(make_project(files))


def clock(time: FakeTime, scale: float = 1.0) -> SchedulerClock:
    return SchedulerClock(scale, wall=lambda: START, monotonic=time.monotonic)


async def _noop(schedule: ScheduleSpec, job_id: str, at: datetime) -> object:
    return None


def test_rates_count_from_start_and_cron_from_the_wall_clock(make_project: MakeProject) -> None:
    time = FakeTime()
    manifest = project(make_project, every="rate(1 minute)", weekday="0 9 * * 1-5", off="never")
    scheduler = Scheduler(manifest, _noop, clock=clock(time, scale=60))
    assert scheduler.next == {
        "every": START + timedelta(minutes=1),
        "weekday": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "off": None,
    }
    time.seconds = 0.4  # 24 simulated seconds: 08:59:54
    assert scheduler.due(scheduler.clock.now()) == []
    time.seconds = 0.6  # 09:00:06: the cron is due
    due = scheduler.due(scheduler.clock.now())
    assert [(s.name, at) for s, at in due] == [("weekday", datetime(2026, 3, 2, 9, tzinfo=UTC))]
    assert scheduler.next["weekday"] == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    time.seconds = 1.5  # 09:00:60 + 30 s: the rate is due once; the missed cron is not replayed
    due = scheduler.due(scheduler.clock.now())
    assert [s.name for s, _ in due] == ["every"]
    assert scheduler.next["every"] == START + timedelta(minutes=2)


def test_reload_keeps_unchanged_next_runs(make_project: MakeProject) -> None:
    time = FakeTime()
    scheduler = Scheduler(project(make_project, a="rate(5 minutes)"), _noop, clock=clock(time))
    first = scheduler.next["a"]
    time.seconds = 120
    scheduler.update(project(make_project, a="rate(5 minutes)", b="hourly"))
    assert scheduler.next["a"] == first
    assert scheduler.next["b"] == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    scheduler.update(project(make_project, a="rate(1 minute)", b="hourly"))
    assert scheduler.next["a"] == START + timedelta(minutes=1)


def test_fire_runs_the_handler_and_reports(make_project: MakeProject) -> None:
    reports: list[tuple[str, str | None, datetime | None]] = []
    ran: list[str] = []

    async def runner(schedule: ScheduleSpec, job_id: str, at: datetime) -> object:
        ran.append(schedule.name)
        if schedule.name == "bad":
            raise RuntimeError("boom")
        return None

    async def scenario() -> None:
        scheduler = Scheduler(
            project(make_project, good="daily", bad="never"),
            runner,
            report=lambda name, job_id, duration, error, upcoming: reports.append(
                (name, error, upcoming)
            ),
            clock=clock(FakeTime()),
        )
        good = await scheduler.fire("good")
        bad = await scheduler.fire("bad")
        assert good.error is None
        assert good.to_dict()["next_run"] == "2026-03-03T00:00:00+00:00"
        assert bad.error == "RuntimeError: boom"

    asyncio.run(scenario())
    assert ran == ["good", "bad"]
    assert reports == [
        ("good", None, datetime(2026, 3, 3, tzinfo=UTC)),
        ("bad", "RuntimeError: boom", None),
    ]
