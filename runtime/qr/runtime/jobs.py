"""Running one queue job or one schedule run: shared by the local worker and the Lambda platform.

A platform receives a message (a row of the SQLite engine, an SQS record) and turns it into a
platform-neutral ``JobMessage``; ``run_queue_job`` then

1. decodes the payload back to the type that was pushed (``qr.runtime.queues.decode_payload``)
   and, when the handler is typed (``payload: Order``), validates it into an instance; a payload
   that does not validate raises ``PayloadError`` before the handler runs, which platforms
   dead-letter at once instead of retrying (``qr.runtime.payloads``);
2. builds the handler-facing ``Job`` (metadata, ``deadline``, ``extend()``);
3. calls ``handler`` with the arguments it names (``payload``, ``job``, ``user``, ...) inside a
   ``qr.runtime.context`` invocation, so pushes and ``socket.send()`` know the job's user;
4. enforces the deadline, which ``job.extend(seconds)`` may move later:

   * ``async def`` handlers are awaited under ``asyncio.timeout``: cancelled at the deadline
     (``extend`` reschedules it);
   * ``def`` handlers run in a worker thread (the event loop stays free). Python cannot stop a
     thread, so a sync handler that overruns is *abandoned*: the job is recorded as failed
     (``JobTimeout``), it goes back to the queue like any failure, and whatever the thread
     returns later is ignored (a warning is logged). Side effects it makes after the deadline
     still happen: handlers must be idempotent (SQS delivers at least once anyway);
5. once the handler returned, pushes the next steps it named (``queues[x].after(...)`` returned,
   ``job.then(...)``) through the platform's ``StepPort``, once per step (``qr.runtime.chains``).

It returns the handler's result or raises what the handler raised (``JobTimeout`` past the
deadline; ``HandlerExit`` for a ``sys.exit()`` or ``KeyboardInterrupt`` in the handler, which
would otherwise stop the whole process); acking,
retrying and dead-lettering are the platform's business. ``run_schedule_job`` does the same for
``schedules/`` handlers (``job``: job_id, schedule_name, scheduled_at, deadline).

A result that is kept as the job's state must be JSON and at most ``MAX_RESULT_BYTES``
encoded: anything else fails the job with a ``JobResultError`` naming the handler's file and line.
``job.progress(value, message)`` goes through ``Progress``: at most one store write per second per
job, the last value always lands (a timer writes it, or it goes with the outcome).

Following jobs from any handler, test or tool (``from qr.runtime import jobs``): ``jobs.get(id)``,
``jobs.cancel(id)`` and ``await jobs.wait(id, timeout=...)``, through the
platform's ``JobStore`` port.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qr.runtime import chains, payloads
from qr.runtime.context import Invocation, invocation
from qr.runtime.errors import HandlerExit, handler_exit
from qr.runtime.http.injection import arguments, parameters
from qr.runtime.manifest import Backoff, Queue, Schedule
from qr.runtime.ports import JobState, JobStore, get_platform
from qr.runtime.queues import MAX_VISIBILITY_SECONDS, decode_payload

log = logging.getLogger("qr.queues")

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item size limit, 400 KB with 1 KB = 1,024 bytes, attribute names and values
included (Amazon DynamoDB Developer Guide, "Constraints in Amazon DynamoDB", Items, and "DynamoDB
item sizes and formats"; checked 2026-12:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-items)."""
MAX_RESULT_BYTES = MAX_ITEM_BYTES - 16 * 1024
"""A job's result, JSON-encoded: the item's other attributes (error up to 4 KB, progress
message, ids, times) stay within the rest. Enforced on every platform, so a result that AWS
would refuse fails the same way under ``qr dev`` and in tests."""
PROGRESS_INTERVAL = 1.0
"""At most one progress write per job per this many seconds."""
MAX_PROGRESS_MESSAGE = 200


class JobResultError(TypeError):
    """A handler returned something that cannot be kept as the job's result."""


class Progress:
    """``job.progress()`` writes of one running job, at most one per ``interval``.

    A report inside the interval is kept and written by a timer on the event loop when the
    interval is over; whatever is still unwritten when the job ends is handed to the outcome's
    write (``close``). Each report also answers whether the job was asked to cancel.
    """

    def __init__(
        self,
        store: JobStore | None,
        job_id: str,
        queue: str,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.queue = queue
        self.interval = interval
        self.clock = clock
        self.last: tuple[float, str | None] | None = None
        self._written_at = -math.inf
        self._pending = False
        self._closed = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def report(self, value: float, message: str | None) -> bool:
        """Record ``value``; returns whether the job was asked to cancel."""
        with self._lock:
            self.last = (value, message)
            if self.store is None or self._closed:
                return False
            now = self.clock()
            due = self._written_at + self.interval
            write = now >= due
            if write:
                self._written_at = now
                self._pending = False
            elif not self._pending:
                self._pending = True
                self._schedule(due - now)
        if write:
            return self._write(value, message)
        return self.store.cancel_requested(self.job_id)

    def close(self) -> tuple[float, str | None] | None:
        """Stop writing; returns the last report if it was not written yet."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, False
            timer, self._timer = self._timer, None
        if timer is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(timer.cancel)
        return self.last if pending else None

    def _write(self, value: float, message: str | None) -> bool:
        assert self.store is not None
        cancelled = self.store.progress(self.job_id, value, message)
        if log.isEnabledFor(logging.INFO):
            text = f" {message}" if message else ""
            log.info(
                "%s job %s progress %d%%%s",
                self.queue,
                self.job_id,
                round(value * 100),
                text,
                extra={"queue": self.queue, "job_id": self.job_id, "progress": value},
            )
        return cancelled

    def _schedule(self, delay: float) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def arm() -> None:
            self._timer = loop.call_later(delay, self._due)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            arm()
        else:
            loop.call_soon_threadsafe(arm)

    def _due(self) -> None:
        with self._lock:
            if not self._pending or self._closed or self.last is None:
                return
            self._pending = False
            self._written_at = self.clock()
            value, message = self.last
        assert self._loop is not None
        future = self._loop.run_in_executor(None, self._write, value, message)
        future.add_done_callback(_log_failed_write)


def _log_failed_write(future: asyncio.Future[bool]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not record a job's progress", exc_info=future.exception())


class JobTimeout(TimeoutError):
    """The handler did not finish by its deadline."""


@dataclass(frozen=True)
class JobMessage:
    """A received queue message, whatever platform received it."""

    job_id: str
    queue_name: str
    body: str
    content_type: str | None
    group_id: str | None = None
    sequence_number: int | None = None
    received_count: int = 1
    queued_at: float = 0.0
    """Epoch seconds when the job was pushed."""
    user_id: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)


class Job:
    """What a queue handler sees as ``job``."""

    __slots__ = (
        "_extend",
        "_moved",
        "_progress",
        "_received",
        "_steps",
        "cancelled",
        "deadline",
        "group_id",
        "job_id",
        "params",
        "queue_name",
        "queued_at",
        "received_count",
        "sequence_number",
        "user",
    )

    def __init__(
        self,
        message: JobMessage,
        deadline: float,
        extend: Callable[[float], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.job_id = message.job_id
        self.queue_name = message.queue_name
        self.group_id = message.group_id
        self.sequence_number = message.sequence_number
        self.received_count = message.received_count
        self.queued_at = datetime.fromtimestamp(message.queued_at, UTC)
        self.user: Mapping[str, Any] | None = (
            {"id": message.user_id} if message.user_id is not None else None
        )
        self.params = dict(message.params)
        self.deadline = deadline
        """``time.monotonic()`` by which the handler must finish (``extend`` moves it)."""
        self._extend = extend
        self._moved: Callable[[float], None] | None = None
        """Told the new deadline when ``extend`` moves it (the running timeout)."""
        self._received = time.monotonic()
        self._progress = progress
        self._steps: list[Any] = []
        self.cancelled = False
        """``jobs.cancel()`` was called for this job; seen at ``progress()`` and ``extend()``.
        Stop early (return, or raise): a cancelled job is not retried."""

    def then(self, queue: Any, payload: object, delay: float = 0) -> None:
        """Push ``payload`` onto ``queue`` (a name or ``queues[name]``) once this job succeeded;
        never twice, even if this job runs again (``qr.runtime.chains``)."""
        from qr.runtime.queues import Queue as QueueHandle

        handle = queue if isinstance(queue, QueueHandle) else QueueHandle(str(queue))
        self._steps.append(handle.after(payload, delay))

    def progress(self, value: float, message: str | None = None) -> None:
        """Report how far the job is (0..1) with an optional short message; also refreshes
        ``job.cancelled``. Writes are rate-limited (one per second); the last value lands."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= 1  # NaN fails this too
        ):
            raise ValueError(f"job.progress() takes a number from 0 to 1, got {value!r}")
        if message is not None and (
            not isinstance(message, str) or len(message) > MAX_PROGRESS_MESSAGE
        ):
            raise ValueError(
                f"job.progress() message must be text of at most {MAX_PROGRESS_MESSAGE} "
                f"characters, got {message!r:.60}"
            )
        if self._progress is not None and self._progress.report(float(value), message):
            self.cancelled = True

    def _check_cancelled(self) -> None:
        progress = self._progress
        if progress is not None and progress.store is not None:
            self.cancelled = self.cancelled or progress.store.cancel_requested(self.job_id)

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    def extend(self, seconds: float) -> None:
        """Keep the job for ``seconds`` from now (SQS ChangeMessageVisibility); never shortens.

        The lease cannot end more than 12 hours after the job was received (the SQS limit).
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"job.extend() takes a positive number of seconds, got {seconds!r}")
        now = time.monotonic()
        if now + seconds - self._received > MAX_VISIBILITY_SECONDS:
            raise ValueError(
                f"job.extend({seconds}) would keep the job past 12 hours after it was received "
                "(the SQS visibility limit); split the work into smaller jobs"
            )
        if self._extend is not None:
            self._extend(seconds)
        self._check_cancelled()
        if now + seconds > self.deadline:
            self.deadline = now + seconds
            if self._moved is not None:
                self._moved(self.deadline)

    def __repr__(self) -> str:
        return f"Job({self.job_id!r}, queue={self.queue_name!r}, attempt={self.received_count})"


@dataclass
class ScheduleJob:
    """What a schedule handler sees as ``job``."""

    job_id: str
    schedule_name: str
    scheduled_at: datetime
    deadline: float

    @property
    def remaining(self) -> float:
        return self.deadline - time.monotonic()


async def run_queue_job(
    queue: Queue,
    message: JobMessage,
    *,
    extend: Callable[[float], None] | None = None,
    deadline: float | None = None,
    progress: Progress | None = None,
    keep_result: bool = False,
) -> Any:
    """Run ``queue``'s handler on ``message``; returns its result or raises.

    ``extend(seconds)`` lengthens the platform's lease (``job.extend``); ``deadline`` (monotonic)
    defaults to now + the queue's ``config["timeout"]``; ``progress`` takes ``job.progress()``
    (the caller ``close()``s it and writes what is left with the outcome). ``keep_result``: the
    result will be kept as the job's state, so it must be JSON (``check_result``).
    """
    handler = _handler(queue.module, queue.file)
    payload = decode_payload(message.body, message.content_type)
    model = payloads.of_handler(handler)
    if model is not None:
        payload = model.validate(payload)
    if deadline is None:
        deadline = time.monotonic() + queue.config.timeout
    if progress is not None:
        progress.bind(asyncio.get_running_loop())
    job = Job(message, deadline, extend, progress)
    values: dict[str, object] = {
        "payload": payload,
        "job": job,
        "user": job.user,
        "params": job.params,
        "job_id": job.job_id,
        "queue_name": job.queue_name,
        "group_id": job.group_id,
        "sequence_number": job.sequence_number,
        "received_count": job.received_count,
        "queued_at": job.queued_at,
        "deadline": deadline,
        "request_id": job.job_id,
    }
    current = Invocation(
        "job",
        job.job_id,
        user=job.user,
        deadline=deadline,
        handler=queue.file,
        extra={"queue": queue.name},
    )
    with invocation(current):
        result = await _call(handler, values, job, queue.file)
        result, steps = chains.split(result)
        steps = job._steps + steps
        if steps:
            pushed = _send_steps(job.job_id, steps)
            if result is None:
                result = {"next": pushed}
    if keep_result and result is not None:
        check_result(result, queue, handler)
    return result


def _send_steps(job_id: str, steps: list[chains.Step]) -> list[str]:
    """Push a finished job's next steps (once per step); returns their job ids."""
    port = get_platform("a chain").queues
    jobs = [step.job for step in steps]
    if isinstance(port, chains.StepPort):
        ids = port.send_steps(job_id, jobs)
    else:  # a port without idempotent steps (a test fake): plain pushes
        ids = [port.send(job) for job in jobs]
    return ids


def check_result(result: Any, queue: Queue, handler: Callable[..., Any] | None = None) -> str:
    """``result`` as JSON text, or ``JobResultError`` naming the handler's file and line."""
    code = getattr(handler, "__code__", None)
    where = f"{queue.file}:{code.co_firstlineno}" if code is not None else queue.file
    try:
        text = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobResultError(
            f"{where}: the handler of queue {queue.name!r} returned a "
            f"{type(result).__name__}, which cannot be kept as the job's result: it is not JSON "
            f"({exc}); return a dict/list/str/number/bool/None (dataclasses.asdict(), "
            "datetime.isoformat()), or return nothing"
        ) from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RESULT_BYTES:
        raise JobResultError(
            f"{where}: the handler of queue {queue.name!r} returned {size:,} bytes of JSON, over "
            f"the {MAX_RESULT_BYTES:,}-byte result limit (job state is a DynamoDB item on AWS, "
            f"and DynamoDB items are at most {MAX_ITEM_BYTES // 1024} KB); store large results "
            "elsewhere (S3, a database) and return their key"
        )
    return text


def _store(what: str) -> JobStore:
    store = get_platform(what).jobs
    if store is None:
        raise RuntimeError(f"{what}: this platform keeps no job state")
    return store


def get(job_id: str) -> JobState | None:
    """The state of job ``job_id`` (``None``: unknown, or its ``keep_results`` time is over)."""
    return _store("jobs.get()").get(str(job_id))


def cancel(job_id: str) -> JobState | None:
    """Cancel a job: if it has not run yet it never will (it ends ``cancelled``); a running job
    sees ``job.cancelled`` become true at its next ``progress()``/``extend()``; a finished job
    is left as it is. Returns the state after the call (``None``: unknown id)."""
    return _store("jobs.cancel()").cancel(str(job_id))


async def wait(job_id: str, timeout: float = 10.0, *, poll: float = 0.05) -> JobState | None:
    """Wait until the job is done (``succeeded``, ``dead``, ``cancelled``) or ``timeout`` seconds
    pass; returns its state then (check ``state.done``), ``None`` for an unknown id."""
    store = _store("jobs.wait()")
    give_up = time.monotonic() + timeout
    delay = min(poll, 0.01)
    while True:
        state = await asyncio.to_thread(store.get, str(job_id))
        left = give_up - time.monotonic()
        if (state is not None and state.done) or left <= 0:
            return state
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, poll)


async def run_schedule_job(
    schedule: Schedule,
    job_id: str,
    scheduled_at: datetime,
    *,
    deadline: float | None = None,
) -> Any:
    """Run ``schedule``'s handler once; returns its result or raises (``JobTimeout`` included)."""
    handler = _handler(schedule.module, schedule.file)
    if deadline is None:
        deadline = time.monotonic() + schedule.config.timeout
    job = ScheduleJob(job_id, schedule.name, scheduled_at, deadline)
    values: dict[str, object] = {
        "job": job,
        "job_id": job_id,
        "schedule_name": schedule.name,
        "scheduled_at": scheduled_at,
        "deadline": deadline,
        "request_id": job_id,
    }
    current = Invocation(
        "schedule",
        job_id,
        deadline=deadline,
        handler=schedule.file,
        extra={"schedule": schedule.name},
    )
    with invocation(current):
        return await _call(handler, values, job, schedule.file)


async def _call(
    handler: Callable[..., Any], values: Mapping[str, object], job: Job | ScheduleJob, file: str
) -> Any:
    kwargs = arguments(handler, values)
    if parameters(handler).is_async:
        try:
            return await _call_async(handler, kwargs, job, file)
        except (SystemExit, KeyboardInterrupt) as exc:
            error = handler_exit(exc, file)
            if error is None:
                raise
            raise error from exc
    context = contextvars.copy_context()
    call = functools.partial(context.run, handler, **kwargs)
    task = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        while not task.done():
            remaining = job.deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.wait((task,), timeout=remaining)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        try:
            return task.result()
        except (SystemExit, KeyboardInterrupt) as exc:
            raise HandlerExit(file, exc) from exc  # raised in a worker thread: never a signal
    task.add_done_callback(functools.partial(_late_result, file, job.job_id))
    raise JobTimeout(f"{file}: handler did not finish by its deadline (config['timeout'])")


async def _call_async(
    handler: Callable[..., Any], kwargs: dict[str, object], job: Job | ScheduleJob, file: str
) -> Any:
    """Await the handler in this task under a timeout that ``job.extend`` can move."""
    loop = asyncio.get_running_loop()

    def loop_time(deadline: float) -> float:  # the loop's clock need not be time.monotonic
        return loop.time() + (deadline - time.monotonic())

    scope = asyncio.timeout_at(loop_time(job.deadline))
    if isinstance(job, Job):
        job._moved = lambda deadline: scope.reschedule(loop_time(deadline))
    try:
        async with scope:
            return await handler(**kwargs)
    except TimeoutError:
        if scope.expired():
            raise JobTimeout(
                f"{file}: handler did not finish by its deadline (config['timeout'])"
            ) from None
        raise


def _late_result(file: str, job_id: str, future: asyncio.Future[Any]) -> None:
    error = None if future.cancelled() else future.exception()
    log.warning(
        "job %s: %s finished after its deadline (%s); the job was already recorded as failed and "
        "this result is ignored",
        job_id,
        file,
        f"raised {type(error).__name__}" if error else "returned",
    )


def _handler(module_name: str, file: str) -> Callable[..., Any]:
    module = sys.modules.get(module_name)
    handler = getattr(module, "handler", None)
    if not callable(handler):
        raise RuntimeError(f"{file}: handler is not loaded (module {module_name!r})")
    function: Callable[..., Any] = handler
    return function


def backoff_delay(
    backoff: Backoff, attempt: int, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before attempt ``attempt + 1``: fixed or exponential, capped, with jitter.

    Exponential: ``initial * 2**(attempt-1)`` capped at ``max``. Jitter draws uniformly from the
    upper half (``[d/2, d]``) so retries spread out but never come much earlier than planned.
    """
    if backoff.strategy == "fixed":
        delay = backoff.initial
    else:
        delay = backoff.initial * 2 ** min(max(attempt - 1, 0), 32)
    delay = min(delay, backoff.max, MAX_VISIBILITY_SECONDS)
    if backoff.jitter:
        delay *= 0.5 + 0.5 * rand()
    return delay
