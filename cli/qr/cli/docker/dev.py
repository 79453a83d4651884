"""``qr dev --docker``'s side of the local platform: traffic in, AWS events out, answers back.

The dev server keeps its engine, connections, scheduler and file watcher; under ``--docker`` it
swaps in these parts, which hand everything to the ``DockerFunction`` as the AWS events
production uses (``qr.cli.docker.events``):

* ``DockerHttpApp`` (ASGI, HTTP): a request → an API Gateway payload 2.0 event → the response
  the function returned; function errors are 502 and platform timeouts 504, as API Gateway does.
* ``DockerSocketDispatch`` (what ``LocalSocketApp`` drives): ``$connect`` (a non-2xx answer
  refuses the connection), messages (route key from the body's ``action``), ``$disconnect``.
* ``DockerWorker`` (the local queue ``Worker`` with one change): the jobs of one claim go to the
  function as one SQS batch; the ids in ``batchItemFailures`` (or all of them when the invocation
  failed) are failed through the engine - backoff, then the dead-letter queue - and the rest
  acknowledged. ``extend`` serves ``ChangeMessageVisibility`` for jobs in flight. The function
  records each job's start, progress and outcome itself (``DynamoJobStore`` against
  ``jobs_table``, the same job state): an outcome it recorded is kept, and the engine records
  one only when the function could not (a crash, a platform timeout). A timeout or a container
  that exits mid-invocation fails the batch like any invocation error (the attempt counts);
  jobs given back at shutdown or reload count their attempt once their batch was sent to the
  function, as the in-process worker counts a handler that ran.
* ``run_schedule``: the EventBridge Scheduler input ``{"qr": "schedule", "name": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.types import Receive, Scope, Send

from qr.cli.docker.events import (
    QueueMessage,
    batch_failures,
    http_event,
    http_response,
    new_request_id,
    route_key,
    schedule_event,
    sqs_event,
    websocket_event,
)
from qr.cli.docker.function import HTTP_TIMEOUT, DockerFunction
from qr.cli.docker.pool import FunctionTimeout, InvocationFailed
from qr.runtime.errors import HTTPError
from qr.runtime.http.app import AccessLog
from qr.runtime.local.engine import Claimed, Engine, LeaseError
from qr.runtime.local.worker import LEASE_GRACE, JobOutcome, Outcome, Worker
from qr.runtime.manifest import Queue, Schedule

MAX_BODY = 6 * 1024 * 1024
http_log = logging.getLogger("qr.http")
socket_log = logging.getLogger("qr.socket")
job_log = logging.getLogger("qr.queues")


class DockerHttpApp:
    def __init__(self, function: DockerFunction, *, on_access: AccessLog | None = None) -> None:
        self.function = function
        self.on_access = on_access
        """Takes the access line as plain values (``qr dev``'s console: no log record, as for
        in-process requests); else a ``qr.http`` log record."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = new_request_id()
        body = await _read_body(receive)
        if body is None:
            status, out_headers, data = 413, [("content-type", "application/json")], b""
            data = json.dumps({"message": "Request Entity Too Large"}).encode()
        else:
            event = http_event(
                method=scope["method"],
                path=scope["path"],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
                body=body,
                source_ip=(scope.get("client") or ("127.0.0.1", 0))[0],
                request_id=request_id,
            )
            status, out_headers, data = await self._invoke(event, request_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": data})
        duration = (time.perf_counter() - started) * 1000
        if self.on_access is not None:
            self.on_access(scope["method"], scope["path"], status, duration, request_id, None)
            return
        http_log.info(
            "%s %s %d in %.1f ms (docker) %s",
            scope["method"],
            scope["path"],
            status,
            duration,
            request_id,
            extra={"status": status, "duration_ms": duration, "request_id": request_id},
        )

    async def _invoke(
        self, event: dict[str, Any], request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        json_type = [("content-type", "application/json")]
        try:
            result = await self.function.invoke(event, request_id=request_id, timeout=HTTP_TIMEOUT)
        except FunctionTimeout as exc:
            return 504, json_type, _error_body(exc.message, request_id)
        except InvocationFailed as exc:
            http_log.error("%s failed in the container: %s", request_id, exc.message)
            return 502, json_type, _error_body(exc.message, request_id)
        response = http_response(result)
        return response.status, response.headers, response.body


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _error_body(message: str, request_id: str) -> bytes:
    return json.dumps({"error": message, "request_id": request_id}).encode()


class DockerSocketDispatch:
    """The three calls ``LocalSocketApp`` makes, answered by the function in its container."""

    def __init__(self, function: DockerFunction) -> None:
        self.function = function
        self._connected_at: dict[str, float] = {}

    def _actions(self) -> Iterable[str]:
        socket = self.function.manifest.socket
        return [h.action for h in socket.handlers] if socket is not None else []

    async def connect(self, connection_id: str, request: object = None) -> None:
        now = time.time()
        headers = dict(getattr(request, "headers", {}) or {})
        url = getattr(request, "url", None)
        event = websocket_event(
            "CONNECT",
            connection_id,
            headers=headers,
            query_string=str(getattr(url, "query", "") or ""),
            now=now,
        )
        try:
            result = await self.function.invoke(event, timeout=HTTP_TIMEOUT)
        except InvocationFailed as exc:
            socket_log.error("connect %s failed in the container: %s", connection_id, exc.message)
            raise HTTPError(502, exc.message) from None
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if status >= 300:
            raise HTTPError(status, _detail(result))
        self._connected_at[connection_id] = now
        socket_log.info("connect conn %s (docker)", connection_id)

    async def receive(self, connection_id: str, data: str | bytes, request: object = None) -> None:
        event = websocket_event(
            "MESSAGE",
            connection_id,
            body=data,
            route_key=route_key(data, self._actions()),
            connected_at=self._connected_at.get(connection_id),
        )
        try:
            await self.function.invoke(event, timeout=HTTP_TIMEOUT)
        except InvocationFailed as exc:
            socket_log.error(
                "message on %s failed in the container: %s", connection_id, exc.message
            )

    async def disconnect(self, connection_id: str) -> None:
        event = websocket_event(
            "DISCONNECT", connection_id, connected_at=self._connected_at.pop(connection_id, None)
        )
        try:
            await self.function.invoke(event, timeout=HTTP_TIMEOUT)
        except InvocationFailed as exc:
            socket_log.error(
                "disconnect %s failed in the container: %s", connection_id, exc.message
            )
        socket_log.info("disconnect conn %s (docker)", connection_id)


def _detail(result: Any) -> str:
    body = result.get("body") if isinstance(result, dict) else None
    try:
        parsed = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])
    return str(body or "refused")


@dataclass
class _Batch:
    jobs: list[Claimed] = field(default_factory=list)
    sealed: bool = False
    future: asyncio.Future[set[str] | str] | None = None


class DockerWorker(Worker):
    """The local worker, with the function in its container as the consumer of SQS batches."""

    def __init__(
        self, engine: Engine, queues: Iterable[Queue], function: DockerFunction, **kwargs: Any
    ) -> None:
        super().__init__(engine, queues, **kwargs)
        self.function = function
        self.inflight: dict[str, Claimed] = {}
        self._open: dict[str, _Batch] = {}

    def extend(self, receipt: str, seconds: float) -> bool:
        """``ChangeMessageVisibility`` from the container."""
        claimed = self.inflight.get(receipt)
        if claimed is None:
            return False
        try:
            self.engine.extend(claimed, seconds + LEASE_GRACE)
        except LeaseError:
            return False
        return True

    async def run_claimed(self, queue: Queue, claimed: Claimed) -> JobOutcome:
        """Join the batch of this claim; then ack or fail this job by the batch's answer."""
        started = time.monotonic()
        batch = self._open.get(queue.name)
        if batch is None or batch.sealed:
            loop = asyncio.get_running_loop()
            batch = _Batch(future=loop.create_future())
            self._open[queue.name] = batch
            # Runs after the tasks started for the same claim have joined.
            loop.call_soon(self._send, queue, batch)
        batch.jobs.append(claimed)
        self.inflight[claimed.receipt] = claimed
        assert batch.future is not None
        try:
            answer = await asyncio.shield(batch.future)
        except asyncio.CancelledError:
            # Given back (shutdown, reload): once the batch went to the function the attempt
            # counts, as the in-process worker counts a handler that ran (and as SQS would).
            self.engine.release(claimed, count=batch.sealed)
            self._log(claimed, "released", started, None)
            raise
        finally:
            self.inflight.pop(claimed.receipt, None)
        config = queue.config
        error: str | None = None
        if isinstance(answer, str):
            error = answer
        elif claimed.job_id in answer:
            error = "reported in batchItemFailures (see the container output above)"
        outcome: Outcome
        if error is None:
            outcome = "ok" if self.engine.ack(claimed) else "stale"
        else:
            recorded = self._recorded_error(claimed) if config.keep_results else None
            if recorded is not None:
                error = f"{recorded.get('type', 'Error')}: {recorded.get('message', '')}"
            outcome = self.engine.fail(
                claimed,
                error,
                max_attempts=config.max_attempts,
                backoff=config.backoff,
                error_info=recorded,
                recorded=recorded is not None,
            )
        duration = time.monotonic() - started
        level = logging.INFO if outcome == "ok" else logging.WARNING
        job_log.log(
            level,
            "%s job %s %s in %.1f ms (attempt %d, docker)%s",
            claimed.queue,
            claimed.job_id,
            outcome,
            duration * 1000,
            claimed.received_count,
            f": {error}" if error else "",
            extra={"queue": claimed.queue, "job_id": claimed.job_id, "outcome": outcome},
        )
        return JobOutcome(
            claimed.job_id, claimed.queue, outcome, claimed.received_count, duration, None, error
        )

    def _recorded_error(self, claimed: Claimed) -> dict[str, str] | None:
        """The error the function recorded for this attempt (its ``JobStore.finish``): a state
        of this attempt other than ``running`` was written by the function."""
        state = self.engine.job_state(claimed.job_id)
        if state is None or state.attempts != claimed.received_count:
            return None
        return state.error if state.status in ("failed", "dead", "cancelled") else None

    def _send(self, queue: Queue, batch: _Batch) -> None:
        batch.sealed = True
        asyncio.get_running_loop().create_task(self._invoke(queue, batch))

    async def _invoke(self, queue: Queue, batch: _Batch) -> None:
        assert batch.future is not None
        ids = [job.job_id for job in batch.jobs]
        messages = [
            QueueMessage(
                message_id=job.job_id,
                receipt_handle=job.receipt,
                body=job.body,
                content_type=job.content_type,
                received_count=job.received_count,
                sent_ms=job.queued_ms,
                first_received_ms=job.received_ms,
                user_id=job.user_id,
                params=job.params,
                group_id=job.group_id,
                sequence_number=job.sequence_number,
            )
            for job in batch.jobs
        ]
        event = sqs_event(
            self.function.queue_arn(queue.name), self.function.manifest.config.region, messages
        )
        answer: set[str] | str
        try:
            result = await self.function.invoke(
                event, request_id=ids[0] if len(ids) == 1 else None, timeout=queue.config.timeout
            )
            answer = batch_failures(result, ids)
        except InvocationFailed as exc:
            answer = exc.message
        if not batch.future.done():
            batch.future.set_result(answer)


async def run_schedule(
    function: DockerFunction, schedule: Schedule, job_id: str, scheduled_at: datetime
) -> object:
    """Fire one schedule in the container; raises when the function failed."""
    try:
        return await function.invoke(
            schedule_event(schedule.name), request_id=job_id, timeout=schedule.config.timeout
        )
    except InvocationFailed as exc:
        raise RuntimeError(exc.message) from None
