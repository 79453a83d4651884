"""Per-request time limits with one timer per event loop instead of one per request.

Each request registers its task and deadline (``Deadlines.watch``: a dict insert, a dict delete);
the loop's single timer is armed for the earliest deadline and re-armed when it fires, cancelling
every task past its deadline. A request that times out sees ``asyncio.CancelledError``;
``Watch.expired`` tells it apart from a cancellation that came from elsewhere (a client that went
away, a server shutting down), and ``Watch.absorb`` undoes the cancellation so the request can
still answer 504.

This is asyncio-specific (``task.cancel``/``uncancel``), as are the platforms that serve the app
(uvicorn, the Lambda entry point, the test client); ``Deadlines.watch`` returns ``None`` outside
asyncio and the caller falls back to an AnyIO cancel scope.
"""

from __future__ import annotations

import asyncio


class Watch:
    """One request's deadline (``deadline`` in the loop's clock, ``loop.time()``)."""

    __slots__ = ("_owner", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float, owner: _LoopDeadlines) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False
        self._owner = owner

    def close(self) -> None:
        self._owner.active.pop(self.task, None)

    def absorb(self) -> None:
        """After the timeout's ``CancelledError`` was caught: let the task run on normally."""
        self.task.uncancel()


class _LoopDeadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.active: dict[asyncio.Task[object], Watch] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.armed_at = float("inf")

    def add(self, watch: Watch) -> None:
        self.active[watch.task] = watch
        if watch.deadline < self.armed_at:
            if self.timer is not None:
                self.timer.cancel()
            self.armed_at = watch.deadline
            self.timer = self.loop.call_at(watch.deadline, self.fire)

    def fire(self) -> None:
        now = self.loop.time()
        earliest = float("inf")
        for task, watch in list(self.active.items()):
            if watch.deadline <= now:
                del self.active[task]
                watch.expired = True
                task.cancel()
            elif watch.deadline < earliest:
                earliest = watch.deadline
        self.timer = None
        self.armed_at = float("inf")
        if earliest != float("inf"):
            self.armed_at = earliest
            self.timer = self.loop.call_at(earliest, self.fire)


class Deadlines:
    def __init__(self) -> None:
        self._last: _LoopDeadlines | None = None
        self._loops: dict[int, _LoopDeadlines] = {}

    def watch(self, seconds: float) -> Watch | None:
        """Cancel the current task in ``seconds``; ``None`` when not running on asyncio."""
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return None
        if task is None:
            return None
        loop = task.get_loop()
        state = self._last
        if state is None or state.loop is not loop:
            state = self._for(loop)
        watch = Watch(task, loop.time() + seconds, state)
        state.add(watch)
        return watch

    def _for(self, loop: asyncio.AbstractEventLoop) -> _LoopDeadlines:
        # Loops come and go (the test client runs one per request unless it is a context
        # manager): keep the current one, drop closed ones.
        self._loops = {k: v for k, v in self._loops.items() if not v.loop.is_closed()}
        state = self._loops.get(id(loop))
        if state is None or state.loop is not loop:
            state = self._loops[id(loop)] = _LoopDeadlines(loop)
        self._last = state
        return state
