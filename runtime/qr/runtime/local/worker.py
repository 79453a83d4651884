"""The local consumer: one asyncio loop per queue over the SQLite engine, plus the local QueuePort.

Each queue's consumer repeats: clear its wake-up event, claim up to ``min(batch_size, free
slots)`` jobs (``concurrency`` bounds how many run at once), start a task per job, and, when it got
fewer than it asked for, sleep until something can have changed:

* an in-process push (``Engine.subscribe``; sync handlers push from worker threads, so the event is
  set through ``call_soon_threadsafe``) or a finished job: the event is set, no polling delay;
* a delayed or backed-off job becoming visible: the consumer sleeps until ``next_visible_ms``;
* another process writing to the database (``qr dev queue``): ``PRAGMA data_version`` is checked
  every ``poll_interval`` (20 ms) while idle; it is a read of a counter, no query runs.

A job runs through ``qr.runtime.jobs.run_queue_job`` (injection, deadline, ``job.progress``
through ``SqliteJobStore``). Success deletes it and keeps its result (the jobs that finish in one event-loop iteration are acked in one
transaction: a commit is the dominant cost); an exception or timeout hands it back to the engine (``fail``: backoff, or
the DLQ once ``max_attempts`` receives are spent). A payload that does not validate as the
handler's model (``PayloadError``) goes to the DLQ at once (``bury``): retrying cannot fix it. Each job logs one line on ``qr.queues`` with
queue, job id, outcome, duration and attempt (also as ``extra`` fields for the dev console).

``stop(grace)`` stops claiming, lets running jobs finish for ``grace`` seconds, then cancels the
rest and gives their jobs back (``Engine.release``: visible at once; the attempt counts, as it
does on SQS when a consumer goes away and the visibility timeout runs out).
``drain()`` runs everything claimable now and returns (``qr.runtime.testing``'s ``run_queue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qr.runtime import context
from qr.runtime.jobs import JobMessage, JobTimeout, Progress, run_queue_job
from qr.runtime.local.engine import Claimed, Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.manifest import Queue
from qr.runtime.payloads import PayloadError
from qr.runtime.ports import OutgoingJob

log = logging.getLogger("qr.queues")

LEASE_GRACE = 2.0
"""Seconds a lease outlives the handler's deadline, so a timed-out job is failed by its worker
before another consumer could claim it."""
_MAX_ERROR = 4000
_INTERNAL = ("/qr/runtime/", "/concurrent/futures/", "/asyncio/")

Outcome = Literal["ok", "retry", "dead", "stale", "released", "cancelled"]


class LocalQueuePort:
    """``QueuePort`` of the local platform: pushes go straight into the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send(self, job: OutgoingJob) -> str:
        now = context.current()
        origin = None if now is None else (now.kind, now.request_id)
        return self.engine.push(job, origin=origin).job_id

    def send_steps(self, job_id: str, steps: Sequence[OutgoingJob]) -> list[str]:
        return self.engine.push_steps(job_id, steps)


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    queue: str
    outcome: Outcome
    """``ok`` (deleted), ``retry`` (back after backoff), ``dead`` (moved to the DLQ), ``stale``
    (the lease was lost before the job finished), ``released`` (given back at shutdown),
    ``cancelled`` (failed after ``jobs.cancel()``: not retried)."""
    attempt: int
    duration: float
    result: Any = None
    error: str | None = None


class Worker:
    """Consumes the manifest's queues from one engine."""

    def __init__(
        self,
        engine: Engine,
        queues: Iterable[Queue],
        *,
        poll_interval: float = 0.02,
        logger: logging.Logger = log,
    ) -> None:
        self.engine = engine
        self.queues = {q.name: q for q in queues}
        self.store = SqliteJobStore(engine)
        engine.configure_keep({q.name: q.config.keep_results for q in self.queues.values()})
        self.poll_interval = poll_interval
        self.log = logger
        self._stopping = False
        self._wakes: dict[str, asyncio.Event] = {}
        self._running: set[asyncio.Task[JobOutcome]] = set()
        self._consumers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acks: list[tuple[Claimed, Any, asyncio.Future[bool]]] = []
        self._progress: dict[str, tuple[float, str | None]] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start one consumer task per queue on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self._unsubscribe is None:
            self._unsubscribe = self.engine.subscribe(self._pushed)
        for queue in self.queues.values():
            self._consumers.append(
                asyncio.create_task(self._consume(queue), name=f"qr-queue-{queue.name}")
            )

    async def run(self) -> None:
        """Consume until cancelled, then shut down gracefully."""
        self.start()
        try:
            await asyncio.gather(*self._consumers)
        finally:
            await self.stop()

    @property
    def in_flight(self) -> set[asyncio.Task[JobOutcome]]:
        """The jobs running now, one task each."""
        return set(self._running)

    def stop_claiming(self) -> None:
        """Claim no more jobs (the running ones go on); ``stop`` finishes the shutdown."""
        self._stopping = True
        for event in self._wakes.values():
            event.set()
        for consumer in self._consumers:
            consumer.cancel()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; wait ``grace`` s for running jobs, then cancel and release the rest."""
        self.stop_claiming()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers.clear()
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- consuming -----------------------------------------------------------------------------

    def _wake(self, name: str) -> asyncio.Event:
        event = self._wakes.get(name)
        if event is None:
            event = self._wakes[name] = asyncio.Event()
        return event

    def _pushed(self, name: str) -> None:
        loop, event = self._loop, self._wakes.get(name)
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def _consume(self, queue: Queue) -> None:
        wake = self._wake(queue.name)
        config = queue.config
        lease = config.timeout + LEASE_GRACE
        version = self.engine.data_version()
        mine: set[asyncio.Task[JobOutcome]] = set()

        def finished(task: asyncio.Task[JobOutcome]) -> None:
            mine.discard(task)
            self._running.discard(task)
            wake.set()

        while not self._stopping:
            wake.clear()
            free = config.concurrency - len(mine)
            want = min(config.batch_size, free)
            batch = (
                self.engine.claim(
                    queue.name,
                    want,
                    lease,
                    max_attempts=config.max_attempts,
                    rate_limit=config.rate_limit,
                )
                if want > 0
                else []
            )
            for claimed in batch:
                task = asyncio.create_task(self.run_claimed(queue, claimed))
                mine.add(task)
                self._running.add(task)
                task.add_done_callback(finished)
            if want > 0 and len(batch) == want:
                await asyncio.sleep(0)  # let the new jobs start before claiming more
                continue
            next_visible = self.engine.next_visible_ms(queue.name) if want > 0 else None
            while not self._stopping:
                timeout = self.poll_interval
                if next_visible is not None:
                    timeout = min(timeout, max(next_visible - self.engine.now_ms(), 0) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                    break
                if next_visible is not None and self.engine.now_ms() >= next_visible:
                    break
                latest = self.engine.data_version()
                if latest != version:
                    version = latest
                    break

    async def run_claimed(self, queue: Queue, claimed: Claimed) -> JobOutcome:
        """Run one claimed job to its outcome (ack, retry, DLQ); logs one line."""
        started = time.monotonic()
        config = queue.config
        message = JobMessage(
            job_id=claimed.job_id,
            queue_name=claimed.queue,
            body=claimed.body,
            content_type=claimed.content_type,
            group_id=claimed.group_id,
            sequence_number=claimed.sequence_number,
            received_count=claimed.received_count,
            queued_at=claimed.queued_ms / 1000,
            user_id=claimed.user_id,
            params=claimed.params,
        )

        def extend(seconds: float) -> None:
            self.engine.extend(claimed, seconds + LEASE_GRACE)

        store = self.store if config.keep_results else None
        progress = Progress(store, claimed.job_id, claimed.queue)
        result: Any = None
        error: str | None = None
        outcome: Outcome
        try:
            result = await run_queue_job(
                queue,
                message,
                extend=extend,
                deadline=started + config.timeout,
                progress=progress,
                keep_result=store is not None,
            )
        except asyncio.CancelledError:
            progress.close()
            self.engine.release(claimed, count=True)  # it ran: its attempt counts
            self._log(claimed, "released", started, None)
            raise
        except PayloadError as exc:
            error = str(exc)
            info = {"type": "PayloadError", "message": error}
            buried = self.engine.bury(claimed, error, info=info, progress=progress.close())
            outcome = "dead" if buried else "stale"
            self._log(claimed, outcome, started, exc)
        except Exception as exc:
            error = _describe(exc)
            outcome = self.engine.fail(
                claimed,
                error,
                max_attempts=config.max_attempts,
                backoff=config.backoff,
                error_info={"type": type(exc).__name__, "message": str(exc), "traceback": error},
                progress=progress.close(),
            )
            self._log(claimed, outcome, started, exc)
        else:
            last = progress.close()
            outcome = "ok" if await self._ack(claimed, result, last) else "stale"
            self._log(claimed, outcome, started, None)
        return JobOutcome(
            claimed.job_id,
            claimed.queue,
            outcome,
            claimed.received_count,
            time.monotonic() - started,
            result,
            error,
        )

    def _ack(
        self, claimed: Claimed, result: Any, progress: tuple[float, str | None] | None
    ) -> asyncio.Future[bool]:
        """Ack in one transaction with every other job that finishes in this loop iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._acks.append((claimed, result, future))
        if progress is not None:
            self._progress[claimed.job_id] = progress
        if len(self._acks) == 1:
            loop.call_soon(self._flush_acks)
        return future

    def _flush_acks(self) -> None:
        batch, self._acks = self._acks, []
        progress, self._progress = self._progress, {}
        try:
            held = self.engine.ack_many(
                [(claimed, result) for claimed, result, _ in batch], progress or None
            )
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), ok in zip(batch, held, strict=True):
            if not future.done():
                future.set_result(ok)

    async def drain(self, names: Sequence[str] | None = None) -> list[JobOutcome]:
        """Run every job that is claimable now (again and again) until none is; for tests.

        Jobs waiting for a delay or a retry backoff are left alone.
        """
        chosen = (
            [self.queues[n] for n in names] if names is not None else list(self.queues.values())
        )
        outcomes: list[JobOutcome] = []
        while True:
            tasks = []
            for queue in chosen:
                config = queue.config
                for claimed in self.engine.claim(
                    queue.name,
                    config.concurrency,
                    config.timeout + LEASE_GRACE,
                    max_attempts=config.max_attempts,
                    rate_limit=config.rate_limit,
                ):
                    tasks.append(self.run_claimed(queue, claimed))
            if not tasks:
                return outcomes
            outcomes.extend(await asyncio.gather(*tasks))

    def _log(
        self, claimed: Claimed, outcome: Outcome, started: float, exc: BaseException | None
    ) -> None:
        duration = (time.monotonic() - started) * 1000
        level = logging.INFO if outcome in ("ok", "released", "cancelled") else logging.WARNING
        if not self.log.isEnabledFor(level):
            return
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self.log.log(
            level,
            "%s job %s %s in %.1f ms (attempt %d)%s",
            claimed.queue,
            claimed.job_id,
            outcome,
            duration,
            claimed.received_count,
            detail,
            extra={
                "queue": claimed.queue,
                "job_id": claimed.job_id,
                "outcome": outcome,
                "duration_ms": duration,
                "attempt": claimed.received_count,
            },
        )


def _describe(exc: BaseException) -> str:
    """The error kept with the job: the traceback through the user's code, without qr's frames."""
    if isinstance(exc, JobTimeout):
        return str(exc)
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [f for f in summary.stack if not any(part in f.filename for part in _INTERNAL)]
    )
    return "".join(summary.format()).strip()[-_MAX_ERROR:]
