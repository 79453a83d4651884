"""The one ASGI app ``qr dev`` serves, and its control endpoint.

``DevApp`` routes by scope: ``lifespan`` to the server's start/stop hooks; ``websocket`` (any path,
like API Gateway's single WebSocket endpoint) to the local socket endpoint; ``/_qr/...`` to the
control endpoint; every other HTTP request to the project's current app, or to the error page
while the route's files are broken (``LiveProject.error_response``).

Control endpoint (used by ``qr dev schedule``; the server binds 127.0.0.1 by default). Every
request passes ``ControlGuard`` first (``qr.cli.dev.guard``: Host, Origin, the per-run token),
else 403:

* ``GET /_qr/health`` - pid, project name, current problems;
* ``POST /_qr/schedules/{name}`` - run a schedule now, answer with its outcome;
* the dashboard's pages and actions (``qr.cli.dev.dashboard.pages``): its pages (``GET``) pass
  the Host and Origin checks without the token (a browser cannot send it on a navigation; the
  page carries it for its actions), every action (``POST``) needs the token.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from qr.cli.dev.dashboard.pages import Dashboard
from qr.cli.dev.guard import ControlGuard
from qr.cli.dev.reload import LiveProject
from qr.cli.dev.scheduler import Scheduler
from qr.cli.errors import QrError
from qr.runtime.manifest import RESERVED_PREFIX

CONTROL_PREFIX = RESERVED_PREFIX
Hook = Callable[[], Awaitable[None]]


class DevApp:
    def __init__(
        self,
        live: LiveProject,
        websocket: ASGIApp,
        scheduler: Scheduler,
        *,
        guard: ControlGuard,
        startup: Hook | None = None,
        shutdown: Hook | None = None,
        dashboard: Dashboard | None = None,
        dashboard_off: str = "the dashboard is off",
    ) -> None:
        self.live = live
        self.guard = guard
        self.websocket = websocket
        self.scheduler = scheduler
        self.startup = startup
        self.shutdown = shutdown
        self.dashboard = dashboard
        self.dashboard_off = dashboard_off
        """Why there is no dashboard (the answer to a page request then)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith(CONTROL_PREFIX):
                await self.control(scope, receive, send)
                return
            error = self.live.error_response(scope)
            if error is not None:
                await error(scope, receive, send)
                self.live.log.line(
                    "HTTP",
                    "cyan",
                    f"{scope['method']} {scope['path']} 500 project error",
                    failed=True,
                )
            else:
                await self.live.app(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.startup is not None:
                        await self.startup()
                except QrError:  # the dev server reports it in qr's words once uvicorn exits
                    await send({"type": "lifespan.startup.failed", "message": ""})
                    raise
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.shutdown is not None:
                    await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def control(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].removeprefix(CONTROL_PREFIX).strip("/")
        method: str = scope["method"]
        response: JSONResponse
        page = method in ("GET", "HEAD")
        dashboard = self.dashboard
        if dashboard is not None and dashboard.handles(method, path):
            refusal = self.guard.refusal(scope, token=not page)
            if refusal is None:
                await dashboard(scope, receive, send, path)
                return
        elif page and path != "health":
            refusal = None
            response = JSONResponse({"error": self.dashboard_off}, 404)
            await response(scope, receive, send)
            return
        else:
            refusal = self.guard.refusal(scope)
        if refusal is not None:
            response = self.guard.forbidden(refusal)
            self.live.log.line(
                "DEV", "yellow", f"refused {method} /_qr/{path}: {refusal}", failed=True
            )
        elif path == "health" and method == "GET":
            error = self.live.error
            response = JSONResponse(
                {
                    "ok": error is None,
                    "pid": os.getpid(),
                    "project": self.live.manifest.config.name,
                    "problems": [str(p) for p in error.problems] if error else [],
                }
            )
        elif path.startswith("schedules/") and method == "POST":
            name = path.removeprefix("schedules/")
            if name not in self.scheduler.schedules:
                known = ", ".join(sorted(self.scheduler.schedules)) or "none"
                response = JSONResponse(
                    {"error": f"no schedule named {name!r} (schedules: {known})"}, 404
                )
            else:
                result = await self.scheduler.fire(name)
                response = JSONResponse(result.to_dict())
        else:
            response = JSONResponse({"error": f"unknown control request {method} /_qr/{path}"}, 404)
        await response(scope, receive, send)
