"""SQS batches from the Lambda event source mapping: run the jobs, report the failures.

The mapping is created with ``ReportBatchItemFailures``, so the function answers
``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``: Lambda deletes every other
message of the batch and leaves the failed ones to come back. ``run_batch``:

1. maps each record to its queue (the ``eventSourceARN``'s queue name minus the stage prefix)
   and to a platform-neutral ``JobMessage`` (attributes per the shared encoding contract:
   ``content_type``, ``user_id``, ``param_<name>``); a record of no known queue is a failure;
2. gives each job the deadline ``min(now + config["timeout"], the function's remaining time
   less a margin)``, and ``job.extend(seconds)`` becomes ChangeMessageVisibility on its receipt;
3. standard queues: runs the jobs concurrently (at most ``config["concurrency"]`` at once);
   FIFO queues: one at a time in batch order; after a job fails, the rest of *its message group*
   in the batch is reported failed without running, so nothing overtakes the failed job, while
   other groups' jobs go on (a failing job blocks only its own group, as SQS FIFO orders per
   group; Powertools' ``skip_group_on_error`` does the same,
   https://docs.aws.amazon.com/powertools/python/latest/utilities/batch/#fifo-queues);
4. backs a failed job off: ChangeMessageVisibility to the queue's backoff delay for its
   ``ApproximateReceiveCount`` (Lambda itself would leave it invisible for the whole visibility
   timeout), and makes unrun FIFO records visible again at once (SQS still counts their receive:
   docs/queues.md). After ``max_attempts``
   receives SQS moves the message to the dead-letter queue (Terraform sets ``maxReceiveCount``).

A payload that does not validate as the handler's model (``PayloadError``) is not retried: the
adapter sends the message to the queue's dead-letter queue itself, with the validation error in
its ``qr_error`` attribute, and reports the record as a success so Lambda deletes it. If that send
fails the record is reported failed like any error (SQS's redrive moves it after
``max_attempts`` receives, without the error).

A debounced job (``qr_debounce`` attributes) whose key's version on DynamoDB is newer than its own
was replaced by a later push: it is reported done without running.

A rate-limited queue (``config["rate_limit"]``) takes a token per record from the DynamoDB
buckets (``qr.runtime.aws.flow``) before running it. A record without a token is not run: it is
made visible again when a token will be there (ChangeMessageVisibility) and reported failed, so
Lambda leaves it on the queue. SQS counts that receive toward ``maxReceiveCount``. A bucket store
that fails (throttling, no table) lets the job run: the limit fails open, with a warning.

A failure to change visibility is logged and never turns a success into a failure.

Job state (``DynamoJobStore``, when the queue keeps it): before running, ``start`` records
``running`` with a conditional update; when it refuses (the job is already finished or was
cancelled) the handler is not called and the message is deleted. After the run ``finish`` records
``succeeded`` with the result, ``failed`` (will retry), ``dead`` (this was the last of
``max_attempts``) or ``cancelled`` (it failed after ``jobs.cancel()``: deleted, not retried).
Two writes per job, plus at most one per second from ``job.progress()``. The error kept is its type
and message; ``QR_JOB_TRACEBACKS=on`` in the stage's environment keeps the traceback too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qr.runtime import flow
from qr.runtime.aws.sqs import (
    DEBOUNCE_ATTRIBUTE,
    DEBOUNCE_VERSION_ATTRIBUTE,
    SqsQueues,
    attributes_of,
)
from qr.runtime.flow import BucketStore
from qr.runtime.jobs import JobMessage, Progress, backoff_delay, run_queue_job
from qr.runtime.manifest import Manifest, Queue
from qr.runtime.payloads import PayloadError
from qr.runtime.ports import JobStart, JobStatus, JobStore

log = logging.getLogger("qr.queues")

DEADLINE_MARGIN = 1.0
"""Seconds kept back from the function's remaining time to report the batch (as the entry's)."""
TRACEBACKS_VARIABLE = "QR_JOB_TRACEBACKS"
LEASE_MARGIN = 5.0
"""Seconds past a job's deadline after which its ``running`` state reads ``queued`` if nothing
finished it (the function was killed: timeout, out of memory)."""


@dataclass(frozen=True)
class _Item:
    record: Mapping[str, Any]
    queue: Queue | None
    message: JobMessage | None
    jobs: JobStore | None = None
    buckets: BucketStore | None = None


async def run_batch(
    records: Sequence[Mapping[str, Any]],
    manifest: Manifest,
    queues: SqsQueues,
    remaining: Callable[[], float | None],
    jobs: JobStore | None = None,
    buckets: BucketStore | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Run every record's job; returns the ``batchItemFailures`` response."""
    items = [_item(record, manifest, queues, jobs, buckets) for record in records]
    failed: list[str] = []
    by_queue: dict[str, list[_Item]] = {}
    for item in items:
        if item.queue is None or item.message is None:
            failed.append(str(item.record.get("messageId", "")))
            continue
        by_queue.setdefault(item.queue.name, []).append(item)
    runs = [
        _run_fifo(group, queues, remaining) if group[0].queue and group[0].queue.fifo
        else _run_standard(group, queues, remaining)
        for group in by_queue.values()
    ]  # fmt: skip
    for result in await asyncio.gather(*runs):
        failed += result
    order = {str(r.get("messageId", "")): i for i, r in enumerate(records)}
    failed.sort(key=lambda message_id: order.get(message_id, 0))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


async def _run_standard(
    items: list[_Item], queues: SqsQueues, remaining: Callable[[], float | None]
) -> list[str]:
    queue = items[0].queue
    assert queue is not None
    limit = asyncio.Semaphore(max(1, queue.config.concurrency))

    async def one(item: _Item) -> str | None:
        async with limit:
            return None if await _run_one(item, queues, remaining) else _id(item)

    results = await asyncio.gather(*(one(item) for item in items))
    return [r for r in results if r is not None]


async def _run_fifo(
    items: list[_Item], queues: SqsQueues, remaining: Callable[[], float | None]
) -> list[str]:
    failed_groups: set[str | None] = set()
    failed: list[str] = []
    for item in items:
        group = item.message.group_id if item.message is not None else None
        if group in failed_groups:
            _visibility(queues, item, 0)  # not run: back at once, behind its group's failed job
            failed.append(_id(item))
        elif not await _run_one(item, queues, remaining):
            failed_groups.add(group)
            failed.append(_id(item))
    return failed


async def _run_one(item: _Item, queues: SqsQueues, remaining: Callable[[], float | None]) -> bool:
    queue, message = item.queue, item.message
    assert queue is not None and message is not None
    now = time.monotonic()
    deadline = now + queue.config.timeout
    left = remaining()
    if left is not None:
        deadline = min(deadline, now + max(0.0, left - DEADLINE_MARGIN))
    receipt = str(item.record.get("receiptHandle", ""))
    if _superseded(item, queues):
        log.info(
            "job %s on %s skipped: a later debounced push replaced it",
            message.job_id,
            queue.name,
            extra={"request_id": message.job_id},
        )
        return True
    wait = _rate_limited(item)
    if wait > 0:
        _visibility(queues, item, math.ceil(wait))
        log.info(
            "job %s on %s is over the rate limit (%s): back in %.1fs",
            message.job_id,
            queue.name,
            queue.config.rate_limit.describe() if queue.config.rate_limit else "",
            wait,
            extra={"request_id": message.job_id},
        )
        return False

    def extend(seconds: float) -> None:
        queues.change_visibility(queue.name, receipt, seconds)

    store, keep = item.jobs, queue.config.keep_results
    if store is not None and not store.start(
        JobStart(
            message.job_id,
            queue.name,
            message.received_count,
            message.queued_at,
            message.user_id,
            keep,
            lease=deadline - now + LEASE_MARGIN,
        )
    ):
        log.info(
            "job %s on %s is already finished or was cancelled: not run",
            message.job_id,
            queue.name,
            extra={"request_id": message.job_id},
        )
        return True
    progress = Progress(store, message.job_id, queue.name)
    try:
        result = await run_queue_job(
            queue,
            message,
            extend=extend,
            deadline=deadline,
            progress=progress,
            keep_result=store is not None,
        )
    except PayloadError as exc:
        try:
            queues.dead_letter(queue.name, dict(item.record), str(exc))
        except Exception:
            log.exception("could not move %s to the dead-letter queue", _id(item))
            if store is not None:
                _record_failure(store, item, exc, progress.close())
            return False
        if store is not None:
            _record_dead(store, item, exc, progress.close())
        log.error(
            "job %s on %s moved to the dead-letter queue: %s",
            message.job_id,
            queue.name,
            exc,
            extra={"request_id": message.job_id},
        )
        return True
    except Exception as exc:
        last = progress.close()
        if store is not None and _record_failure(store, item, exc, last) == "cancelled":
            log.info("job %s on %s was cancelled", message.job_id, queue.name)
            return True
        delay = backoff_delay(queue.config.backoff, message.received_count)
        log.error(
            "job %s on %s failed (attempt %d of %d): %s: %s; retrying in %.0fs",
            message.job_id,
            queue.name,
            message.received_count,
            queue.config.max_attempts,
            type(exc).__name__,
            exc,
            delay,
            exc_info=exc,
            extra={"request_id": message.job_id},
        )
        _visibility(queues, item, delay)
        return False
    if store is not None:
        try:
            store.finish(
                message.job_id, "succeeded", keep=keep, result=result, progress=progress.close()
            )
        except Exception:  # the work is done: never run it again because its state was lost
            log.exception("job %s: could not record its result", message.job_id)
    return True


def _record_failure(
    store: JobStore, item: _Item, exc: Exception, progress: tuple[float, str | None] | None
) -> JobStatus | None:
    """Record a failed attempt; returns the status recorded (``None``: not recorded)."""
    assert item.queue is not None and item.message is not None
    message, config = item.message, item.queue.config
    status: JobStatus = "dead" if message.received_count >= config.max_attempts else "failed"
    error = {"type": type(exc).__name__, "message": str(exc)}
    if os.environ.get(TRACEBACKS_VARIABLE) == "on":
        error["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
    try:
        if store.cancel_requested(message.job_id):
            status = "cancelled"
        store.finish(
            message.job_id, status, keep=config.keep_results, error=error, progress=progress
        )
    except Exception:
        log.exception("job %s: could not record its failure", message.job_id)
        return None
    return status


def _record_dead(
    store: JobStore, item: _Item, exc: Exception, progress: tuple[float, str | None] | None
) -> None:
    """A job dead-lettered by the adapter itself (its payload does not validate)."""
    assert item.queue is not None and item.message is not None
    error = {"type": type(exc).__name__, "message": str(exc)}
    try:
        store.finish(
            item.message.job_id,
            "dead",
            keep=item.queue.config.keep_results,
            error=error,
            progress=progress,
        )
    except Exception:
        log.exception("job %s: could not record it dead", item.message.job_id)


def _superseded(item: _Item, queues: SqsQueues) -> bool:
    """A debounced job whose key has a later version: another push replaced it."""
    attributes = attributes_of(dict(item.record))
    key, version = attributes.get(DEBOUNCE_ATTRIBUTE), attributes.get(DEBOUNCE_VERSION_ATTRIBUTE)
    if key is None or version is None or queues.debounce is None or item.queue is None:
        return False
    latest = queues.debounce.latest(item.queue.name, key)
    return latest is not None and latest > int(version)


def _rate_limited(item: _Item) -> float:
    """Seconds until the job's rate-limit bucket has a token (0: it took one, or no limit)."""
    queue, message = item.queue, item.message
    assert queue is not None and message is not None
    limit = queue.config.rate_limit
    if limit is None:
        return 0.0
    if item.buckets is None:
        log.warning(
            "queue %s has a rate limit but QR_FLOW_TABLE is not set: not limited", queue.name
        )
        return 0.0
    value = flow.key_value(
        limit,
        group_id=message.group_id,
        user_id=message.user_id,
        body=message.body,
        content_type=message.content_type or "application/json",
    )
    try:
        return item.buckets.take(flow.bucket_id(queue.name, limit, value), limit)
    except Exception:
        log.warning("rate limit of %s not checked (bucket store failed)", queue.name, exc_info=True)
        return 0.0


def _visibility(queues: SqsQueues, item: _Item, seconds: float) -> None:
    assert item.queue is not None
    try:
        queues.change_visibility(item.queue.name, str(item.record["receiptHandle"]), seconds)
    except Exception:
        log.warning("could not change the visibility of %s", _id(item), exc_info=True)


def _id(item: _Item) -> str:
    return str(item.record.get("messageId", ""))


def _item(
    record: Mapping[str, Any],
    manifest: Manifest,
    queues: SqsQueues,
    jobs: JobStore | None,
    buckets: BucketStore | None,
) -> _Item:
    name = queues.name_of(str(record.get("eventSourceARN", "")))
    queue = manifest.queue(name) if name else None
    if queue is None:
        log.error(
            "SQS message %s from %s: no queue of this project has that name",
            record.get("messageId"),
            record.get("eventSourceARN"),
        )
        return _Item(record, None, None)
    store = jobs if queue.config.keep_results else None
    return _Item(record, queue, message_of(record, queue.name), store, buckets)


def message_of(record: Mapping[str, Any], queue_name: str) -> JobMessage:
    system = record.get("attributes") or {}
    attributes = attributes_of(dict(record))
    sequence = system.get("SequenceNumber")
    params = {k.removeprefix("param_"): v for k, v in attributes.items() if k.startswith("param_")}
    return JobMessage(
        job_id=str(record["messageId"]),
        queue_name=queue_name,
        body=str(record.get("body", "")),
        content_type=attributes.get("content_type"),
        group_id=system.get("MessageGroupId"),
        sequence_number=int(sequence) if sequence else None,
        received_count=int(system.get("ApproximateReceiveCount", "1")),
        queued_at=int(system.get("SentTimestamp", "0")) / 1000,
        user_id=attributes.get("user_id"),
        params=params,
    )
