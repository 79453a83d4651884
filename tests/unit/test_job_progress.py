"""job.progress(): validation, at most one write per second per job, the last value lands."""

from __future__ import annotations

import asyncio
import math

import pytest

from qr.runtime.jobs import Job, JobMessage, Progress


class RecordingStore:
    """Just enough of ``JobStore`` to see what ``Progress`` writes and reads."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str | None]] = []
        self.cancel = False
        self.reads = 0

    def progress(self, job_id: str, value: float, message: str | None) -> bool:
        self.writes.append((value, message))
        return self.cancel

    def cancel_requested(self, job_id: str) -> bool:
        self.reads += 1
        return self.cancel


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _job(progress: Progress | None) -> Job:
    message = JobMessage("j1", "q", "{}", "application/json")
    return Job(message, deadline=math.inf, progress=progress)


@pytest.mark.parametrize("value", [1.01, -0.5, math.nan, math.inf, "0.5", None, False])
def test_progress_outside_0_to_1_raises_with_the_value(value: object) -> None:
    with pytest.raises(ValueError, match="takes a number from 0 to 1, got") as caught:
        _job(None).progress(value)  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


def test_a_long_message_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 200 characters"):
        _job(None).progress(0.5, "x" * 201)


def test_one_write_per_interval_and_the_last_value_lands_by_timer() -> None:
    store, clock = RecordingStore(), Clock()

    async def scenario() -> None:
        progress = Progress(store, "j1", "q", interval=0.05, clock=clock)  # type: ignore[arg-type]
        progress.bind(asyncio.get_running_loop())
        job = _job(progress)
        job.progress(0.1, "a")
        job.progress(0.2, "b")
        job.progress(0.3, "c")
        assert store.writes == [(0.1, "a")]  # the others are inside the interval
        assert store.reads == 2  # but each call still learns about a cancel
        clock.now += 1
        deadline = asyncio.get_running_loop().time() + 10
        while store.writes[-1] != (0.3, "c"):  # the timer writes the last value
            assert asyncio.get_running_loop().time() < deadline, store.writes
            await asyncio.sleep(0.01)
        assert store.writes == [(0.1, "a"), (0.3, "c")]
        assert progress.close() is None  # nothing left for the outcome to write

    asyncio.run(scenario())


def test_an_unwritten_last_value_goes_with_the_outcome() -> None:
    store, clock = RecordingStore(), Clock()

    async def scenario() -> None:
        progress = Progress(store, "j1", "q", clock=clock)  # type: ignore[arg-type]
        progress.bind(asyncio.get_running_loop())
        job = _job(progress)
        job.progress(0.5)
        job.progress(0.9, "almost")
        assert progress.close() == (0.9, "almost")
        assert store.writes == [(0.5, None)]

    asyncio.run(scenario())


def test_cancel_is_seen_at_the_next_progress_call() -> None:
    store, clock = RecordingStore(), Clock()

    async def scenario() -> None:
        progress = Progress(store, "j1", "q", clock=clock)  # type: ignore[arg-type]
        progress.bind(asyncio.get_running_loop())
        job = _job(progress)
        job.progress(0.1)
        seen = [job.cancelled]
        store.cancel = True
        job.progress(0.2)  # throttled: a read, not a write
        seen.append(job.cancelled)
        assert seen == [False, True]
        progress.close()

    asyncio.run(scenario())
