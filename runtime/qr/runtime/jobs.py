"""Running one queue job or one schedule run: shared by the local worker and the Lambda platform.

A platform receives a message (a row of the SQLite engine, an SQS record) and turns it into a
platform-neutral ``JobMessage``; ``run_queue_job`` then

1. decodes the payload back to the type that was pushed (``qr.runtime.queues.decode_payload``);
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
     still happen: handlers must be idempotent (SQS delivers at least once anyway).

It returns the handler's result or raises what the handler raised (or ``JobTimeout``); acking,
retrying and dead-lettering are the platform's business. ``run_schedule_job`` does the same for
``schedules/`` handlers (``job``: job_id, schedule_name, scheduled_at, deadline).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qr.runtime.context import Invocation, invocation
from qr.runtime.http.injection import arguments, parameters
from qr.runtime.manifest import Backoff, Queue, Schedule
from qr.runtime.queues import MAX_VISIBILITY_SECONDS, decode_payload

log = logging.getLogger("qr.queues")


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
        "_received",
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
) -> Any:
    """Run ``queue``'s handler on ``message``; returns its result or raises.

    ``extend(seconds)`` lengthens the platform's lease (``job.extend``); ``deadline`` (monotonic)
    defaults to now + the queue's ``config["timeout"]``.
    """
    handler = _handler(queue.module, queue.file)
    payload = decode_payload(message.body, message.content_type)
    if deadline is None:
        deadline = time.monotonic() + queue.config.timeout
    job = Job(message, deadline, extend)
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
        return await _call(handler, values, job, queue.file)


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
        return await _call_async(handler, kwargs, job, file)
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
        return task.result()
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
