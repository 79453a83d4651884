"""The Lambda entry point's event runner: one loop and task group for the container's life."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import anyio.to_thread
import pytest

from qr.runtime.aws.entry import EventRunner

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("_seen", default="unset")


@pytest.fixture
def runner() -> Iterator[EventRunner]:
    loop = asyncio.new_event_loop()
    runner = EventRunner(loop)
    yield runner
    runner.close()
    loop.close()


async def _worker_thread() -> threading.Thread:
    return await anyio.to_thread.run_sync(threading.current_thread)


def test_sync_work_of_successive_events_reuses_one_worker_thread(runner: EventRunner) -> None:
    first = runner.run(_worker_thread())
    second = runner.run(_worker_thread())
    assert first is second
    assert first is not threading.current_thread()


def test_closing_stops_the_worker_threads(runner: EventRunner) -> None:
    worker = runner.run(_worker_thread())
    assert worker.is_alive()
    runner.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    # A closed runner starts a new task group for the next event.
    assert runner.run(asyncio.sleep(0, "again")) == "again"


def test_an_event_error_reaches_the_caller_and_later_events_still_run(
    runner: EventRunner,
) -> None:
    async def boom() -> None:
        raise ValueError("boom")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(ValueError, match="boom"):
        runner.run(boom())
    with pytest.raises(asyncio.CancelledError):
        runner.run(cancelled())
    assert runner.run(asyncio.sleep(0, 42)) == 42


def test_each_event_starts_from_a_fresh_context(runner: EventRunner) -> None:
    async def set_and_read() -> str:
        before = _seen.get()
        _seen.set("first event")
        return before

    assert runner.run(set_and_read()) == "unset"
    assert runner.run(set_and_read()) == "unset"
