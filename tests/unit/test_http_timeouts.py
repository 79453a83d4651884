"""One deadline timer per event loop: expiry, re-arming, and cancellations from elsewhere."""

from __future__ import annotations

import asyncio

from qr.runtime.http.timeouts import Deadlines


async def _guarded(deadlines: Deadlines, seconds: float, work: float) -> str:
    watch = deadlines.watch(seconds)
    assert watch is not None
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if not watch.expired:
            raise
        watch.absorb()
        return "timed out"
    finally:
        watch.close()


def test_only_the_overdue_task_is_cancelled() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines()
        return list(
            await asyncio.gather(
                _guarded(deadlines, 0.02, 30),
                _guarded(deadlines, 30, 0.05),
                _guarded(deadlines, 0.08, 30),  # a later deadline: the timer re-arms for it
            )
        )

    assert asyncio.run(main()) == ["timed out", "done", "timed out"]


def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    async def main() -> str:
        deadlines = Deadlines()
        task = asyncio.ensure_future(_guarded(deadlines, 30, 30))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(main()) == "cancelled"


def test_an_absorbed_timeout_leaves_the_task_usable() -> None:
    async def main() -> tuple[str, int]:
        deadlines = Deadlines()
        first = await _guarded(deadlines, 0.01, 30)
        await asyncio.sleep(0)  # would raise if the task were still being cancelled
        task = asyncio.current_task()
        assert task is not None
        return first, task.cancelling()

    assert asyncio.run(main()) == ("timed out", 0)


def test_each_event_loop_gets_its_own_timer() -> None:
    deadlines = Deadlines()

    async def main() -> str:
        return await _guarded(deadlines, 0.01, 30)

    assert asyncio.run(main()) == "timed out"
    assert asyncio.run(main()) == "timed out"


def test_outside_asyncio_there_is_no_watch() -> None:
    assert Deadlines().watch(1) is None
