"""The function's one handler, ``qr.runtime.aws.entry.handler``, for every event AWS sends it.

Cold start (the first event of a container, not at import, so importing stays cheap):

1. JSON log lines (``jsonlog.configure``);
2. SSM parameters under ``QR_SSM_PATH`` into ``os.environ`` (before any user module runs, so
   module-level ``os.environ[...]`` reads see them);
3. ``scan`` the bundle (its root is ``LAMBDA_TASK_ROOT``): loads every handler module;
4. the Lambda platform (SQS, API Gateway management API, DynamoDB) via ``set_platform``;
5. one event loop for the life of the container, and on it one long-lived task that starts each
   event's coroutine as a task of an anyio task group (``EventRunner``). Each event still gets its
   own task and a fresh copy of the context, but anyio (Starlette's thread pool for sync
   handlers) sees one root task for the container's life and keeps its worker threads, as under
   uvicorn; ``run_until_complete(coroutine)`` per event made every event a root task of its own,
   so every sync handler call started and stopped a thread. Those worker threads are not
   daemons: the runner is closed (the task group ends, the threads stop) when the interpreter
   shuts down, before it waits for them; ``LambdaRuntime.close()`` does it earlier.

Each event is recognised by its shape and dispatched:

* API Gateway HTTP API payload 2.0 -> the ASGI app ``qr dev`` serves (``http_api``);
* API Gateway WebSocket ``CONNECT`` / ``MESSAGE`` / ``DISCONNECT`` (``$connect``,
  ``$default`` and action routes, ``$disconnect``) -> ``qr.runtime.sockets.SocketDispatch``;
  ``on_connect`` raising ``HTTPError(401/403)`` answers that status, which refuses the connection;
* SQS batches -> ``batch.run_batch`` (partial batch response);
* EventBridge Scheduler input ``{"qr": "schedule", "name": ...}`` -> the schedule's handler;
  a failed run raises, so Lambda records the error and applies its retry policy;
* anything else -> a logged error and ``{"error": ...}``, never a crash.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from qr.runtime import ports
from qr.runtime.aws import http_api, jsonlog, lambda_platform
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.flow import DynamoBuckets
from qr.runtime.aws.sqs import SqsQueues
from qr.runtime.manifest import Manifest, scan

log = logging.getLogger("qr.lambda")

_BUNDLE_ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")
ACCESS_LOG_VARIABLE = "QR_ACCESS_LOG"
"""``off``: no access line per HTTP request. ``qr dev --docker`` sets it: its dev server prints
its own line for each request, and a line per request through Docker's log pipeline costs the
dev loop more than the rest of the request."""
DEADLINE_MARGIN = 1.0
"""Seconds kept back from the function's remaining time to report a job's outcome."""


class LambdaRuntime:
    """What one container keeps between events: manifest, platform, app, event loop."""

    def __init__(
        self,
        root: Path,
        environ: MutableMapping[str, str] | None = None,
        clients: Clients | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.clients = clients or Clients()
        jsonlog.configure(self.environ.get("LOG_LEVEL"))
        self._load_settings()
        self.manifest: Manifest = scan(root)
        platform = lambda_platform(self.environ, self.clients)
        self.platform = replace(
            platform,
            queue_names=frozenset(q.name for q in self.manifest.queues),
            status_queues=self.manifest.status_queues,
        )
        ports.set_platform(self.platform)
        self.loop = asyncio.new_event_loop()
        self.runner = EventRunner(self.loop)
        _at_shutdown(self.runner.close)
        self._app: Any = None
        self._sockets: Any = None
        self.buckets: DynamoBuckets | None = None
        table = self.environ.get("QR_FLOW_TABLE")
        if table:
            self.buckets = DynamoBuckets(table, self.clients)

    def close(self) -> None:
        self.runner.close()
        self.loop.close()

    def _load_settings(self) -> None:
        path = self.environ.get("QR_SSM_PATH")
        if not path:
            return
        from qr.runtime.aws.ssm import load_parameters

        try:
            names = load_parameters(path, self.clients, self.environ)
        except Exception:
            log.exception("could not read the stage settings under %s from SSM", path)
        else:
            log.debug("loaded %d settings from %s", len(names), path)

    @property
    def app(self) -> Any:
        if self._app is None:
            from qr.runtime.http import create_app

            quiet = self.environ.get(ACCESS_LOG_VARIABLE) == "off"
            self._app = create_app(self.manifest, on_access=_no_access_line if quiet else None)
        return self._app

    @property
    def sockets(self) -> Any:
        if self._sockets is None:
            from qr.runtime.sockets import SocketDispatch

            self._sockets = SocketDispatch(self.manifest)
        return self._sockets

    def dispatch(self, event: object, context: object = None) -> Any:
        request_id = str(getattr(context, "aws_request_id", "") or uuid.uuid4().hex)
        remaining = _remaining(context)
        if not isinstance(event, dict):
            return _unknown(event)
        if http_api.is_http_event(event):
            deadline = http_api.deadline_from(_ms(remaining()))
            return self.runner.run(http_api.handle(self.app, event, request_id, deadline))
        if _is_websocket_event(event):
            return self.runner.run(self._websocket(event))
        if _is_sqs_event(event):
            from qr.runtime.aws import batch

            queues = self.platform.queues
            assert isinstance(queues, SqsQueues)
            return self.runner.run(
                batch.run_batch(
                    event["Records"],
                    self.manifest,
                    queues,
                    remaining,
                    jobs=self.platform.jobs,
                    buckets=self.buckets,
                )
            )
        schedule = _schedule_input(event)
        if schedule is not None:
            return self.runner.run(self._schedule(schedule, request_id, remaining))
        return _unknown(event)

    async def _websocket(self, event: Mapping[str, Any]) -> dict[str, Any]:
        from qr.runtime.errors import HTTPError

        context = event["requestContext"]
        connection_id = str(context["connectionId"])
        kind = context.get("eventType")
        if kind == "CONNECT":
            try:
                await self.sockets.connect(connection_id, _connect_request(event))
            except HTTPError as exc:
                body = json.dumps({"error": exc.detail}, default=str)
                return {"statusCode": exc.status, "headers": exc.headers, "body": body}
        elif kind == "DISCONNECT":
            await self.sockets.disconnect(connection_id)
        else:
            body = str(event.get("body") or "")
            data: str | bytes = body
            if event.get("isBase64Encoded"):
                try:
                    data = base64.b64decode(body, validate=True)
                except binascii.Error as exc:
                    log.error(
                        "WebSocket message on %s: marked isBase64Encoded but not valid base64 "
                        "(%s); not delivered",
                        connection_id,
                        exc,
                        extra={"request_id": context.get("requestId")},
                    )
                    return {"statusCode": 400}
            await self.sockets.receive(connection_id, data)
        return {"statusCode": 200}

    async def _schedule(
        self, schedule_input: Mapping[str, Any], request_id: str, remaining: Any
    ) -> dict[str, Any]:
        from qr.runtime.jobs import run_schedule_job

        name = str(schedule_input.get("name", ""))
        schedule = self.manifest.schedule(name)
        if schedule is None:
            known = ", ".join(s.name for s in self.manifest.schedules) or "none"
            log.error("scheduled event for %r: no such schedule (known: %s)", name, known)
            return {"error": f"no schedule named {name!r}"}
        now = time.monotonic()
        deadline = now + schedule.config.timeout
        left = remaining()
        if left is not None:
            deadline = min(deadline, now + max(0.0, left - DEADLINE_MARGIN))
        scheduled_at = _scheduled_at(schedule_input.get("scheduled_at"))
        try:
            result = await run_schedule_job(schedule, request_id, scheduled_at, deadline=deadline)
        except Exception:
            log.exception("schedule %s failed", name, extra={"request_id": request_id})
            raise
        return {"schedule": name, "result": result if _jsonable(result) else repr(result)}


class EventRunner:
    """Runs one event's coroutine at a time on ``loop``, each as a task of one task group."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._inbox: asyncio.Queue[tuple[Coroutine[Any, Any, Any], asyncio.Future[Any]]] | None
        self._inbox = None
        self._host: asyncio.Task[None] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end (blocking) and return its result or raise its error."""
        if self._inbox is None or self._host is None or self._host.done():
            self._inbox = asyncio.Queue()
            self._host = self.loop.create_task(self._serve(self._inbox))
        done: asyncio.Future[T] = self.loop.create_future()
        self._inbox.put_nowait((coroutine, done))
        return self.loop.run_until_complete(done)

    def close(self) -> None:
        """End the task group (anyio stops its worker threads with it); idempotent."""
        host = self._host
        if host is None or host.done() or self.loop.is_closed() or self.loop.is_running():
            return
        host.cancel()
        with contextlib.suppress(BaseException):
            self.loop.run_until_complete(host)

    async def _serve(
        self, inbox: asyncio.Queue[tuple[Coroutine[Any, Any, Any], asyncio.Future[Any]]]
    ) -> None:
        import anyio

        async with anyio.create_task_group() as group:
            while True:
                coroutine, done = await inbox.get()
                group.start_soon(_settle, coroutine, done)


async def _settle(coroutine: Coroutine[Any, Any, Any], done: asyncio.Future[Any]) -> None:
    """Await one event; its outcome, errors included, goes to ``done``, never to the group."""
    try:
        result = await coroutine
    except asyncio.CancelledError:  # run() raises it; the group and later events go on
        done.cancel()
    except BaseException as exc:  # SystemExit too: run() re-raises it in the handler's thread
        if not done.done():
            done.set_exception(exc)
    else:
        if not done.done():
            done.set_result(result)


def _at_shutdown(action: Callable[[], None]) -> None:
    """Run ``action`` when the interpreter exits, before it joins non-daemon threads.

    ``atexit`` runs after that join, too late to stop them; ``threading._register_atexit`` (what
    ``concurrent.futures`` uses) runs before it. Where it is missing, ``atexit`` is the fallback.
    """
    register = getattr(threading, "_register_atexit", None)
    try:
        if callable(register):
            register(action)
            return
    except RuntimeError:  # the interpreter is already shutting down
        return
    atexit.register(action)


_runtime: LambdaRuntime | None = None


def handler(event: object, context: object = None) -> Any:
    """The Lambda handler: ``qr.runtime.aws.entry.handler``."""
    global _runtime
    if _runtime is None:
        root = Path(os.environ.get("LAMBDA_TASK_ROOT") or _BUNDLE_ROOT)
        _runtime = LambdaRuntime(root)
    return _runtime.dispatch(event, context)


def _no_access_line(
    method: str, path: str, status: int, duration_ms: float, rid: str, user_id: str | None
) -> None:
    """The access line's place when ``QR_ACCESS_LOG=off``."""


def _remaining(context: object) -> Any:
    getter = getattr(context, "get_remaining_time_in_millis", None)

    def remaining() -> float | None:
        return getter() / 1000 if callable(getter) else None

    return remaining


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _is_websocket_event(event: Mapping[str, Any]) -> bool:
    context = event.get("requestContext")
    return (
        isinstance(context, dict)
        and "connectionId" in context
        and context.get("eventType") in ("CONNECT", "MESSAGE", "DISCONNECT")
    )


def _is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def _schedule_input(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if event.get("qr") == "schedule":
        return event
    detail = event.get("detail")  # an EventBridge rule with the same input as its detail
    if isinstance(detail, dict) and detail.get("qr") == "schedule":
        return detail
    return None


def _scheduled_at(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC).replace(microsecond=0)


def _connect_request(event: Mapping[str, Any]) -> Any:
    """A Starlette ``Request`` for ``on_connect(request)`` from the ``$connect`` event."""
    from urllib.parse import urlencode

    from starlette.requests import Request

    multi_headers = event.get("multiValueHeaders") or {
        k: [v] for k, v in (event.get("headers") or {}).items()
    }
    headers = [
        (str(name).lower().encode("latin-1", "replace"), str(value).encode("utf-8"))
        for name, values in multi_headers.items()
        for value in values
    ]
    multi_query = event.get("multiValueQueryStringParameters") or {
        k: [v] for k, v in (event.get("queryStringParameters") or {}).items()
    }
    query = urlencode([(k, v) for k, values in multi_query.items() for v in values])
    context = event.get("requestContext") or {}
    identity = context.get("identity") or {}
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "wss",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": headers,
        "client": (str(identity.get("sourceIp") or "0.0.0.0"), 0),
        "server": (str(context.get("domainName") or "lambda"), 443),
        "state": {
            "request_id": context.get("requestId"),
            "connection_id": context.get("connectionId"),
        },
    }
    return Request(scope)


def _unknown(event: object) -> dict[str, str]:
    shape = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
    log.error(
        "unrecognised event (keys: %s): expected an HTTP API 2.0, WebSocket, SQS or "
        "EventBridge Scheduler event",
        shape,
    )
    return {"error": "unrecognised event"}


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
