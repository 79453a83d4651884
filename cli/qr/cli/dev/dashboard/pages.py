"""The dashboard's pages and actions (``qr dev`` serves them under ``/_qr/``).

Pages (``GET``, HTML; ``ControlGuard`` checks Host and Origin, no token, as a browser sends
none): ``/_qr/`` overview, ``queues``, ``jobs``, ``jobs/{id}``, ``schedules``, ``sockets``,
``logs``; ``events`` is the server-sent events stream of the live feed; ``static/...`` the CSS
and script; ``jobs.json`` the current job list as JSON (the export button).

Actions (``POST``, JSON in and out) need the per-run token in the ``X-Qr-Token`` header: the
page carries it in ``<meta name="qr-token">`` (a page of another site can neither read it nor
send the header without a CORS preflight, which this server never grants), the CLI reads it
from ``.qr/dev/server.json``. So the buttons and ``qr jobs cancel`` are the same requests:

* ``queues/{name}/push`` ``{"payload": ..., "delay": s, "group": id}``; ``queues/{name}/redrive``;
  ``queues/{name}/purge``;
* ``jobs/{id}/cancel``;
* ``sockets/send`` ``{"user": id, "message": ...}``;
* ``schedules/{name}`` (run now) stays in ``DevApp`` (``qr dev schedule`` uses it).

Every read goes through the ports (``JobStore`` for jobs) or the engine's own methods
(queue statistics, redrive, purge), never the SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.types import Receive, Scope, Send

from qr.cli.dev.dashboard.feed import TICK, Feed
from qr.cli.dev.reload import LiveProject
from qr.cli.dev.scheduler import Scheduler
from qr.cli.routes_table import routes_data
from qr.runtime.local.connections import LocalRegistry
from qr.runtime.local.engine import Engine
from qr.runtime.ports import STATUSES, JobState, JobStore, QueuePort
from qr.runtime.queues import Queue, QueueError
from qr.runtime.sockets import SocketTarget

HERE = Path(__file__).parent
JOB_ACTIONS = ("cancel", "retry", "replay", "promote")
PAGE_SIZE = 50
FRAME_LIMIT = 200
"""Events per frame of the live stream at most (a page shows the last 200 requests): beyond it
they count as dropped, so a burst costs the server one bounded frame per tick."""
"""Jobs per page: the list is read page by page, whatever the number of jobs."""
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_PAGES = ("", "queues", "jobs", "schedules", "sockets", "logs")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


_UTC_TIME = "%Y-%m-%d %H:%M:%S UTC"


@dataclass
class Dashboard:
    live: LiveProject
    engine: Engine
    jobs: JobStore
    queues: QueuePort
    scheduler: Scheduler
    registry: LocalRegistry
    feed: Feed
    token: str

    def handles(self, method: str, path: str) -> bool:
        """Whether ``METHOD /_qr/path`` is the dashboard's (else ``DevApp``'s own endpoints)."""
        if method in ("GET", "HEAD"):
            return (
                path in _PAGES
                or path in ("events", "jobs.json")
                or path.startswith(("static/", "jobs/", "trace/"))
            )
        return path.startswith(("queues/", "jobs/", "sockets/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        request = Request(scope, receive)
        response = await self.respond(request, path)
        await response(scope, receive, send)

    async def respond(self, request: Request, path: str) -> Response:
        if request.method in ("GET", "HEAD"):
            return await self.page(request, path)
        try:
            body = await request.body()
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error("the request body is not JSON", 400)
        if not isinstance(data, dict):
            return _error("the request body must be a JSON object", 400)
        return await asyncio.to_thread(self.act, path, data)

    # -- pages ---------------------------------------------------------------------------------

    async def page(self, request: Request, path: str) -> Response:
        if path.startswith("static/"):
            return _static(path.removeprefix("static/"))
        if path == "events":
            return self.events(request)
        if path == "jobs.json":
            listing = await asyncio.to_thread(self.job_list, request)
            return JSONResponse([job.to_dict() for job in listing["jobs"]])
        render: dict[str, Callable[[Request], dict[str, Any]]] = {
            "": self.overview,
            "queues": self.queue_page,
            "jobs": self.job_list,
            "schedules": self.schedule_page,
            "sockets": self.socket_page,
            "logs": self.log_page,
        }
        if path.startswith("jobs/"):
            job_id = path.removeprefix("jobs/")
            state = await asyncio.to_thread(self.jobs.get, job_id)
            if state is None:
                return self.html("missing.html", {"what": f"job {job_id}"}, "jobs", 404)
            extra = await asyncio.to_thread(self.engine.job_detail, job_id)
            return self.html(
                "job.html",
                {"job": state, "detail": _job_view(state), "extra": _extra_view(extra)},
                "jobs",
            )
        if path.startswith("trace/"):
            context = await asyncio.to_thread(self.trace, path.removeprefix("trace/"))
            return self.html("trace.html", context, "trace")
        context = await asyncio.to_thread(render[path], request)
        return self.html(f"{path or 'overview'}.html", context, path or "overview")

    def html(
        self, template: str, context: dict[str, Any], section: str, status: int = 200
    ) -> Response:
        context = {
            **context,
            "project": self.live.manifest.config.name,
            "section": section,
            "token": self.token,
            "problems": [str(p) for p in self.live.error.problems] if self.live.error else [],
        }
        text = _templates.get_template(template).render(context)
        return HTMLResponse(text, status, headers=_NO_STORE)

    def overview(self, request: Request) -> dict[str, Any]:
        data = routes_data(self.live.manifest)
        return {"data": data}

    def queue_page(self, request: Request) -> dict[str, Any]:
        schemas = {
            q["name"]: json.dumps(q["payload"]["schema"], indent=2)
            for q in self.live.manifest.to_dict()["queues"]
            if (q.get("payload") or {}).get("schema")
        }
        return {"queues": self.queue_stats(), "schemas": schemas}

    def queue_stats(self) -> list[dict[str, Any]]:
        names = [q.name for q in self.live.manifest.queues]
        stats = {s.queue: s.to_dict() for s in self.engine.stats(names)}
        rates = self.engine.finished_per_queue(time.time() - 60)
        return [
            {**stats.get(name, {"queue": name}), "per_second": rates.get(name, 0) / 60}
            for name in names
        ]

    def job_list(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        queue = query.get("queue") or None
        status = query.get("status") or None
        search = (query.get("id") or "").strip()
        try:
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            page = 1
        error = None
        if status is not None and status not in STATUSES:
            error, status = f"unknown status {status!r}", None
        if search:
            found = self.jobs.get(search)
            jobs = [found] if found is not None else []
            more = False
        else:
            offset = (page - 1) * PAGE_SIZE
            rows = self.jobs.list(queue=queue, status=status, limit=offset + PAGE_SIZE + 1)
            jobs = list(rows[offset : offset + PAGE_SIZE])
            more = len(rows) > offset + PAGE_SIZE
        return {
            "jobs": jobs,
            "more": more,
            "page": page,
            "queue": queue or "",
            "status": status or "",
            "search": search,
            "error": error,
            "queue_names": [q.name for q in self.live.manifest.queues],
            "statuses": STATUSES,
            "views": [_job_view(job) for job in jobs],
        }

    def schedule_page(self, request: Request) -> dict[str, Any]:
        rows = []
        local = datetime.now().astimezone().tzinfo
        history = [
            {**run.to_dict(), "at": run.scheduled_at.astimezone(UTC).strftime(_UTC_TIME)}
            for run in reversed(self.scheduler.history)
        ]
        for name, schedule in sorted(self.scheduler.schedules.items()):
            upcoming: list[datetime] = []
            at = self.scheduler.next.get(name)
            while at is not None and len(upcoming) < 3:
                upcoming.append(at)
                at = schedule.expression.next_run(at, started=self.scheduler.started)
            rows.append(
                {
                    "name": name,
                    "expression": schedule.expression.normalized,
                    "file": schedule.file,
                    "next": [
                        (
                            a.astimezone(UTC).strftime(_UTC_TIME),
                            a.astimezone(local).strftime("%Y-%m-%d %H:%M:%S %Z"),
                        )
                        for a in upcoming
                    ],
                    "runs": [run for run in history if run["name"] == name][:5],
                }
            )
        return {"schedules": rows}

    def socket_page(self, request: Request) -> dict[str, Any]:
        users: dict[str, list[str]] = {}
        anonymous: list[str] = []
        for connection in self.registry.all():
            user = self.registry.user_of(connection)
            if user is None:
                anonymous.append(connection)
            else:
                users.setdefault(user, []).append(connection)
        return {
            "users": sorted(users.items()),
            "anonymous": anonymous,
            "handlers": self.live.manifest.socket,
        }

    def trace(self, origin: str) -> dict[str, Any]:
        """One timeline for a request (or job, message, schedule run) id: its request line, its
        console lines, the jobs it pushed and theirs in turn, each with its attempts."""
        events, _, _ = self.feed.since(0)
        request = next(
            (e for e in events if e["kind"] == "request" and e["request_id"] == origin), None
        )
        jobs: list[dict[str, Any]] = []
        seen = {origin}
        frontier = [(origin, 0)]
        while frontier and len(jobs) < 500:
            parent, depth = frontier.pop(0)
            for state in self.engine.pushed_by(parent):
                if state.job_id in seen:
                    continue
                seen.add(state.job_id)
                extra = _extra_view(self.engine.job_detail(state.job_id))
                jobs.append({"job": state, "depth": depth, "parent": parent, "extra": extra})
                frontier.append((state.job_id, depth + 1))
        sockets = [e for e in events if e["kind"] == "socket" and e["origin"] in seen]
        # the console lines naming the id or any job of the trace (each job's own JOB line)
        lines = [e for e in events if e["kind"] == "log" and any(i in e["message"] for i in seen)]
        own = self.jobs.get(origin)
        return {
            "origin": origin,
            "request": request,
            "lines": lines,
            "sockets": sockets,
            "jobs": jobs,
            "self_job": own,
            "self_extra": _extra_view(self.engine.job_detail(origin)) if own else None,
        }

    def log_page(self, request: Request) -> dict[str, Any]:
        return {
            "request_id": request.query_params.get("request", ""),
            "job_id": request.query_params.get("job", ""),
            "level": request.query_params.get("level", ""),
        }

    def events(self, request: Request) -> Response:
        """Server-sent events: one ``data:`` frame per tick with what is new, bounded."""
        feed = self.feed
        try:
            position = int(request.headers.get("last-event-id") or -1)
        except ValueError:
            position = -1
        if position < 0:
            # a new page gets the recent history the ring still holds
            position = max(0, feed.last - int(request.query_params.get("history") or 0))

        async def stream() -> Any:
            nonlocal position
            feed.readers += 1
            try:
                yield "retry: 1000\n\n"
                limit = None  # the first frame carries the history the page asked for
                while not feed.closed and not await request.is_disconnected():
                    events, dropped, position = feed.since(position, limit=limit)
                    limit = FRAME_LIMIT
                    if events or dropped:
                        frame = json.dumps({"events": events, "dropped": dropped})
                        yield f"id: {position}\ndata: {frame}\n\n"
                    else:
                        yield ": idle\n\n"
                    await asyncio.sleep(TICK)
            finally:
                feed.readers -= 1

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={**_NO_STORE, "X-Accel-Buffering": "no"},
        )

    # -- actions -------------------------------------------------------------------------------

    def act(self, path: str, data: dict[str, Any]) -> Response:
        parts = path.split("/")
        known_queues = [q.name for q in self.live.manifest.queues]
        if parts[0] == "queues" and len(parts) == 3:
            name, action = parts[1], parts[2]
            if name not in known_queues:
                return _error(
                    f"there is no queue named {name!r} (queues: {', '.join(known_queues) or 'none'})",
                    404,
                )
            if action == "push":
                return self.push(name, data)
            if action == "redrive":
                return JSONResponse({"queue": name, "moved": self.engine.redrive(name)})
            if action == "purge":
                return JSONResponse({"queue": name, "purged": self.engine.purge(name)})
        if parts[0] == "jobs" and len(parts) == 3 and parts[2] in JOB_ACTIONS:
            return self.job_action(parts[2], parts[1])
        if path == "sockets/send":
            user = str(data.get("user") or "")
            if not user:
                return _error('say which user to send to: {"user": id, "message": ...}', 400)
            sent = SocketTarget((user,)).send(data.get("message"))
            return JSONResponse({"user": user, "connections": sent})
        return _error(f"unknown dashboard action POST /_qr/{path}", 404)

    def job_action(self, action: str, job_id: str) -> Response:
        """cancel (``JobStore.cancel``), retry (a dead job back onto its queue, or a failed one
        out of its backoff now), replay (its payload pushed again), promote (a delayed job now)."""
        unknown = _error(f"no job {job_id!r} (unknown id, or its state expired)", 404)
        if action == "cancel":
            state = self.jobs.cancel(job_id)
            return unknown if state is None else JSONResponse(state.to_dict())
        if self.jobs.get(job_id) is None and action != "retry":
            return unknown
        if action == "promote":
            if not self.engine.promote(job_id):
                return _error(
                    f"job {job_id} is not waiting (only a delayed job or one waiting to be retried can run now)",
                    409,
                )
            return JSONResponse({"job_id": job_id, "promoted": True})
        new = self.engine.retry(job_id) if action == "retry" else self.engine.replay(job_id)
        if new is None:
            if self.jobs.get(job_id) is None:
                return unknown
            if action == "retry":
                return _error(
                    f"job {job_id} has not failed (only a dead job or one waiting to be retried can be retried)",
                    409,
                )
            return _error(f"job {job_id}'s payload is not kept (pushed by an older qr)", 409)
        if new == job_id:  # a failed job waiting out its backoff runs now, as itself
            return JSONResponse({"job_id": job_id, "promoted": True})
        return JSONResponse({"job_id": job_id, "new_job_id": new})

    def push(self, name: str, data: dict[str, Any]) -> Response:
        queue = Queue(name)
        try:
            if data.get("group"):
                queue = queue.group(str(data["group"]))
            job = queue.prepare(data.get("payload"), float(data.get("delay") or 0))
        except QueueError as exc:
            return _error(exc.message, 400, exc.hint)
        except (TypeError, ValueError) as exc:
            return _error(str(exc), 400)
        return JSONResponse({"queue": name, "job_id": self.queues.send(job)})


_NO_STORE = {"Cache-Control": "no-store"}


def _error(message: str, status: int, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status)


def _static(name: str) -> Response:
    path = HERE / "static" / name
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or not path.is_file():
        return _error(f"no static file {name!r}", 404)
    return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "no-cache"})


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _extra_view(extra: dict[str, Any] | None) -> dict[str, Any]:
    if extra is None:
        return {"payload": None, "attempts": [], "origin": None}
    body, kind = extra["body"], extra["content_type"] or ""
    payload = body
    if body is not None and kind.startswith("application/json"):
        try:
            payload = json.dumps(json.loads(body), indent=2)
        except ValueError:
            payload = body
    attempts = [
        {
            **attempt,
            "started": _when(
                None if attempt.get("started_ms") is None else attempt["started_ms"] / 1000
            ),
            "finished": _when(
                None if attempt.get("finished_ms") is None else attempt["finished_ms"] / 1000
            ),
        }
        for attempt in extra["attempts"]
    ]
    return {"payload": payload, "attempts": attempts, "origin": extra["origin"]}


def _job_view(state: JobState) -> dict[str, Any]:
    return {
        "queued": _when(state.queued_at),
        "started": _when(state.started_at),
        "finished": _when(state.finished_at),
        "result": json.dumps(state.result, indent=2, default=str),
        "error": state.error,
        "progress": None if state.progress is None else round(state.progress * 100),
    }
