"""The ASGI application built from a manifest: what ``qr dev`` serves and Lambda invokes.

``create_app(manifest)`` compiles each route once (handler functions per method, middleware hooks,
CORS, cache and timeout settings) into a segment trie (``routing``) and returns ``QrApp``, a plain
ASGI callable. Building is cheap, so the dev server builds a new app after every reload.

One HTTP request goes through these stages:

1. split the raw path into decoded segments (bad encoding or ``.``/``..`` -> 400) and look the
   route up (none -> 404);
2. CORS preflight / bare ``OPTIONS`` (answered here unless ``config["cors"]`` is off), method
   check (-> 405 with ``Allow``), body checks: ``Content-Length`` over the limit -> 413,
   ``config["accepts"]`` mismatch -> 415;
3. inside ``context.invocation(...)`` and within ``config["timeout"]`` (-> 504):
   ``authenticate`` -> ``on_request`` -> the handler, each called with what it names
   (``injection``), the result rendered (``responses``). When the handler and those hooks are
   all plain ``def`` functions, the chain runs in ONE worker-thread hop (``_SyncChain``; two when
   the handler asks for ``body``, which is read on the loop between the hooks and the handler):
   a hop costs about as much as the rest of a small request, and the common shape is a sync
   ``authenticate`` in front of a sync handler;
4. ``HTTPError`` -> its status with ``{"error": detail}``; any other exception (``sys.exit()`` in
   a handler too, as ``errors.HandlerExit``) -> logged with its traceback, ``on_error`` may
   answer, else 500 ``{"error": "Internal Server Error", "request_id": ...}`` (plus the traceback
   only when ``dev``);
5. ``on_response``, CORS and Cache-Control headers; HEAD responses lose their body;
6. one access line: method, path, status, duration, request id - on the ``qr.http`` logger, or
   through the platform's ``on_access`` callable (``qr dev``) where a log record costs too much.

A platform that cannot turn what it received into a request (the Lambda adapter, for a body marked
base64 that is not) puts why in ``scope["state"]["bad_request"]``: the app answers 400 with it and
logs it, before stage 1.

The request id is ``scope["state"]["request_id"]`` when the platform put one there (the Lambda
adapter puts the Lambda request id), else 32 random hex digits (a uuid4's worth). A platform deadline
(``scope["state"]["deadline"]``, ``time.monotonic()`` based, e.g. from Lambda's remaining time)
shortens the route's timeout when it is sooner.

``lifespan`` scopes are acknowledged; ``websocket`` scopes go to the ``websocket`` ASGI app given
to ``create_app`` (the socket dispatcher), or are refused with close code 1000 when there is none.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qr.runtime import context
from qr.runtime.errors import HTTPError, handler_exit
from qr.runtime.http import cors, middleware
from qr.runtime.http.injection import Signature, arguments, call_with, in_context, parameters
from qr.runtime.http.middleware import BadUser, Hooks
from qr.runtime.http.requests import (
    BODYLESS_METHODS,
    BodyTooLarge,
    LimitedReceive,
    QrRequest,
    accepted,
    has_body,
    parse_body,
)
from qr.runtime.http.responses import error_response, json_response, render
from qr.runtime.http.routing import BadPath, Router, split_path
from qr.runtime.http.timeouts import Deadlines
from qr.runtime.manifest import Cors, Manifest, Route, RouteConfig

DEFAULT_BODY_LIMIT = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit."""

access_log = logging.getLogger("qr.http")
error_log = logging.getLogger("qr.http.error")

USER_KEY = "qr.user_id"
"""The ASGI scope key where a request's authenticated user id is left for the access line."""
AccessLog = Callable[[str, str, int, float, str, str | None], None]
"""``(method, path, status, duration_ms, request_id, user_id)``: a platform's own access line. Without it
the app logs each request on the ``qr.http`` logger; ``qr dev`` passes one because a logging
record per request costs about a third of its throughput."""

_DEFAULT_CORS = Cors()
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_NO_STATE: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Endpoint:
    """One route, compiled: what serving a request needs without looking anything up."""

    route: Route
    handlers: Mapping[str, Callable[..., Any]]
    """Method -> function (``HEAD`` -> the ``get`` function unless the module has ``head``)."""
    allow: str
    hooks: Hooks
    config: RouteConfig
    sync_hooks: bool
    """``authenticate`` and ``on_request`` are plain functions (or absent): a sync handler's
    whole chain can run in one worker-thread hop."""
    auth_names: tuple[str, ...]
    """The parameters of ``authenticate`` (what ``_credentials`` computes)."""

    @classmethod
    def build(cls, route: Route, module: Any, root: Path) -> Endpoint:
        handlers: dict[str, Callable[..., Any]] = {}
        for method, name in route.functions.items():
            handlers[method] = getattr(module, name)
        if "GET" in handlers and "HEAD" not in handlers:
            handlers["HEAD"] = handlers["GET"]
        allowed = list(route.methods)
        if route.config.cors.enabled and "OPTIONS" not in allowed:
            allowed.append("OPTIONS")
        hooks = middleware.resolve(route, root)
        sync_hooks = not any(
            parameters(hook).is_async
            for hook in (hooks.authenticate, hooks.on_request)
            if hook is not None
        )
        auth_names = parameters(hooks.authenticate).names if hooks.authenticate else ()
        return cls(route, handlers, ", ".join(allowed), hooks, route.config, sync_hooks, auth_names)

    @property
    def where(self) -> str:
        return f"{self.route.file}:{self.route.line}"

    @property
    def authenticate_where(self) -> str:
        return self.route.middleware.get("authenticate") or ""


class QrApp:
    """The ASGI app; see the module docstring for the request pipeline."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        dev: bool = False,
        body_limit: int = DEFAULT_BODY_LIMIT,
        websocket: ASGIApp | None = None,
        on_access: AccessLog | None = None,
    ) -> None:
        import sys

        self.manifest = manifest
        self.dev = dev
        self.body_limit = body_limit
        self.websocket = websocket
        self.on_access = on_access
        self.endpoints = tuple(
            Endpoint.build(route, sys.modules[route.module], manifest.root)
            for route in manifest.routes
        )
        self.router: Router[Endpoint] = Router((e.route, e) for e in self.endpoints)
        self.deadlines = Deadlines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.other(scope, receive, send)
            return
        # The HTTP request, here rather than in a method of its own: one coroutine less per request.
        started = time.perf_counter()
        state = scope.get("state") or _NO_STATE
        # Not os.urandom: a system call per request, and an id needs to be unique, not secret.
        request_id = str(state.get("request_id") or f"{_random_bits(128):032x}")
        status = 500
        try:
            response = await self.respond(scope, receive, request_id, state)
            status = response.status_code
            if scope["method"] == "HEAD":
                send = _without_body(send)
            await response(scope, receive, send)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            if self.on_access is not None:
                self.on_access(
                    scope["method"], scope["path"], status, elapsed, request_id, scope.get(USER_KEY)
                )
            elif access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms %s",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed,
                    request_id,
                    extra={"request_id": request_id, "status": status, "duration_ms": elapsed},
                )

    async def other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A ``websocket`` or ``lifespan`` scope."""
        kind = scope["type"]
        if kind == "websocket":
            if self.websocket is not None:
                await self.websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000, "reason": "no socket/"})
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def respond(
        self, scope: Scope, receive: Receive, request_id: str, state: Mapping[str, Any]
    ) -> StarletteResponse:
        method: str = scope["method"]
        problem = state.get("bad_request")
        if problem:
            error_log.warning(
                "%s %s: 400 Bad Request: %s",
                method,
                scope["path"],
                problem,
                extra={"request_id": request_id},
            )
            return json_response({"error": f"Bad Request: {problem}"}, 400)
        raw_path = scope.get("raw_path")
        endpoint = None if raw_path is None else self.router.exact(raw_path)
        params: dict[str, str | list[str]] = {}
        if endpoint is None:
            try:
                if raw_path is not None:
                    segments = split_path(raw_path)
                else:  # a platform that only gives the decoded path: %2F is already a slash
                    segments = split_path(scope["path"].encode("utf-8").replace(b"%", b"%25"))
            except BadPath as exc:
                return json_response({"error": f"bad request path: {exc}"}, 400)
            match = self.router.match(segments)
            if match is None:
                return _with(
                    json_response({"error": "Not Found"}, 404),
                    cors.headers_for(_DEFAULT_CORS, _origin(scope)),
                )
            endpoint, params = match
        limited = LimitedReceive(receive, self.body_limit)
        request = QrRequest(scope, limited)
        origin = _origin(scope)
        route_cors = endpoint.config.cors
        if method == "OPTIONS" and route_cors.enabled:
            requested = request.headers.get("access-control-request-method")
            if requested is not None or "OPTIONS" not in endpoint.handlers:
                headers = cors.preflight(
                    route_cors,
                    origin,
                    endpoint.allow.split(", "),
                    request.headers.get("access-control-request-headers"),
                )
                return StarletteResponse(
                    status_code=204, headers={"allow": endpoint.allow, **headers}
                )
        cors_headers = cors.headers_for(route_cors, origin) if origin else _NO_HEADERS
        function = endpoint.handlers.get(method)
        if function is None:
            return _with(
                json_response(
                    {"error": f"Method {method} not allowed; this route serves {endpoint.allow}"},
                    405,
                    {"allow": endpoint.allow},
                ),
                cors_headers,
            )
        timeout = endpoint.config.timeout
        now = time.monotonic()
        platform_deadline = state.get("deadline")
        if platform_deadline is not None:
            timeout = max(0.0, min(timeout, platform_deadline - now))
        exchange = _Exchange(
            endpoint, function, request, limited, params, request_id, timeout, now + timeout
        )
        response = await self.run(exchange)
        if (
            endpoint.config.cache is not None
            and method in ("GET", "HEAD")
            and response.status_code < 400
            and "cache-control" not in response.headers
        ):
            response.headers["cache-control"] = endpoint.config.cache
        return _with(response, cors_headers)

    async def run(self, ex: _Exchange) -> StarletteResponse:
        invocation = context.Invocation(
            "http", ex.request_id, None, deadline=ex.deadline, handler=ex.endpoint.route.file
        )
        bodyless = ex.request.method in BODYLESS_METHODS
        with context.invocation(invocation):
            try:
                if not bodyless:  # a body there is never read
                    self.check_body(ex.endpoint, ex.request)
                response = await self.within(ex)
            except HTTPError as exc:
                response = error_response(exc)
            except BodyTooLarge as exc:
                response = _too_large(exc.limit)
            except Exception as exc:
                response = await self.failed(ex, exc)
            except (SystemExit, KeyboardInterrupt) as exc:  # from an async handler or hook
                error = handler_exit(exc, ex.endpoint.route.file)
                if error is None:  # a real Ctrl+C
                    raise
                error.__cause__ = exc
                response = await self.failed(ex, error)
            finally:
                if not bodyless:
                    await ex.request.close()  # uploaded files of a form
            if ex.endpoint.hooks.on_response is not None:
                response = await self.after(ex, response)
            user = context.current()
            if user is not None and user.user is not None:  # for the access line
                ex.request.scope[USER_KEY] = user.user_id
        return response

    async def within(self, ex: _Exchange) -> StarletteResponse:
        """``call`` within the exchange's timeout, else a 504."""
        watch = self.deadlines.watch(ex.timeout)
        if watch is None:  # not on asyncio
            with anyio.move_on_after(ex.timeout):
                try:
                    return await self.call(ex)
                except _DeadlinePassed:
                    pass
            expired = True
        else:
            try:
                return await self.call(ex)
            except asyncio.CancelledError:
                if not watch.expired:
                    raise
                expired = True
            except _DeadlinePassed:  # a sync chain's worker saw it before the loop's timer
                expired = True
            finally:
                watch.close()
                if watch.expired:  # also when the handler swallowed the cancellation
                    watch.absorb()
        assert expired
        error_log.error(
            "%s %s took longer than its timeout of %gs (%s)",
            ex.request.method,
            ex.request.url.path,
            ex.timeout,
            ex.endpoint.where,
        )
        return json_response(
            {
                "error": f"Gateway Timeout: the handler did not finish within {ex.timeout:g}s",
                "request_id": ex.request_id,
            },
            504,
        )

    def check_body(self, endpoint: Endpoint, request: Request) -> None:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            raise BodyTooLarge(self.body_limit)
        accepts = endpoint.config.accepts
        if accepts and has_body(request):
            content_type = request.headers.get("content-type")
            if not accepted(content_type, accepts):
                raise HTTPError(
                    415,
                    f"Unsupported Media Type {content_type or '(none)'}; this route accepts "
                    f"{', '.join(accepts)}",
                )

    async def call(self, ex: _Exchange) -> StarletteResponse:
        signature = parameters(ex.function)
        if not signature.is_async and ex.endpoint.sync_hooks:
            return await self.call_sync(ex, signature)
        hooks = ex.endpoint.hooks
        request = ex.request
        user: Mapping[str, Any] | None = None
        if hooks.authenticate is not None:
            found = await call_with(hooks.authenticate, _credentials(ex, ex.endpoint.auth_names))
            user = middleware.normalize_user(found, ex.endpoint.authenticate_where)
            context.update_user(user)
        if hooks.on_request is not None:
            early = await call_with(
                hooks.on_request, {"request": request, "user": user, "request_id": ex.request_id}
            )
            if early is not None:
                return render(early)
        body = await parse_body(request, ex.limited) if _wants_body(ex, signature) else None
        values = _arguments(ex, signature, user, body)
        if signature.is_async:
            return render(await ex.function(**values))
        return await in_context(contextvars.copy_context(), _render_call, ex.function, values)

    async def call_sync(self, ex: _Exchange, signature: Signature) -> StarletteResponse:
        """Sync hooks and a sync handler in one worker-thread hop (see ``_SyncChain``)."""
        chain = _SyncChain(ex, signature)
        context_copy = contextvars.copy_context()
        try:
            if not _wants_body(ex, signature):
                return await in_context(context_copy, chain.run, None)
            # The body is read on the loop, after the hooks (a refused request is never read).
            if chain.has_hooks:
                early = await in_context(context_copy, chain.hooks)
                if early is not None:
                    return early
            body = await parse_body(ex.request, ex.limited)
            return await in_context(context_copy, chain.handler, body)
        except BaseException:
            chain.abandoned = True  # a worker still running stops before its next step
            raise
        finally:
            if chain.authenticated:
                hooks = ex.endpoint.hooks
                if hooks.on_response is not None or hooks.on_error is not None:
                    context.update_user(chain.user)  # they see the user, as on the loop
                elif chain.user is not None:  # only the access line wants it
                    ex.request.scope[USER_KEY] = str(chain.user["id"])

    async def failed(self, ex: _Exchange, error: Exception) -> StarletteResponse:
        if isinstance(error, BadUser):
            error_log.error("%s", error)
        else:
            error_log.error(
                "unhandled %s in %s %s (%s)",
                type(error).__name__,
                ex.request.method,
                ex.request.url.path,
                ex.endpoint.where,
                exc_info=error,
            )
        hook = ex.endpoint.hooks.on_error
        if hook is not None:
            try:
                answer = await call_with(
                    hook,
                    {
                        "error": error,
                        "request": ex.request,
                        "user": _current_user(),
                        "request_id": ex.request_id,
                    },
                )
                if answer is not None:
                    return render(answer)
            except HTTPError as exc:
                return error_response(exc)
            except Exception as exc:
                where = ex.endpoint.route.middleware.get("on_error")
                error_log.error("on_error failed (%s)", where, exc_info=exc)
        body: dict[str, object] = {"error": "Internal Server Error", "request_id": ex.request_id}
        if self.dev:
            body["traceback"] = "".join(traceback.format_exception(error))
        return json_response(body, 500)

    async def after(self, ex: _Exchange, response: StarletteResponse) -> StarletteResponse:
        hook = ex.endpoint.hooks.on_response
        assert hook is not None
        try:
            replaced = await call_with(
                hook,
                {
                    "request": ex.request,
                    "response": response,
                    "user": _current_user(),
                    "request_id": ex.request_id,
                },
            )
        except HTTPError as exc:
            return error_response(exc)
        except Exception as exc:
            return await self.failed(ex, exc)
        return response if replaced is None else render(replaced)


class _Exchange:
    """One request on its way through a route: what every stage needs."""

    __slots__ = (
        "deadline",
        "endpoint",
        "function",
        "limited",
        "params",
        "request",
        "request_id",
        "timeout",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        function: Callable[..., Any],
        request: Request,
        limited: LimitedReceive,
        params: dict[str, str | list[str]],
        request_id: str,
        timeout: float,
        deadline: float,
    ) -> None:
        self.endpoint = endpoint
        self.function = function
        self.request = request
        self.limited = limited
        self.params = params
        self.request_id = request_id
        self.timeout = timeout
        self.deadline = deadline
        """``time.monotonic()`` by which the handler must finish."""


class _DeadlinePassed(Exception):
    """A sync chain's worker found the request past its deadline before its next step."""


class _SyncChain:
    """``authenticate`` -> ``on_request`` -> the handler, all plain functions, in a worker thread.

    Runs in a copy of the request's context (``update_user`` there is seen by the next steps);
    the loop side reads ``user`` back afterwards. Before each step the worker checks the deadline
    and whether the loop has given up on the request (a timeout, a client gone): a request that
    timed out during ``authenticate`` never reaches its handler, as on the loop.
    """

    __slots__ = ("abandoned", "authenticated", "ex", "has_hooks", "signature", "user")

    def __init__(self, ex: _Exchange, signature: Signature) -> None:
        self.ex = ex
        self.signature = signature
        hooks = ex.endpoint.hooks
        self.has_hooks = hooks.authenticate is not None or hooks.on_request is not None
        self.user: Mapping[str, Any] | None = None
        self.authenticated = False
        self.abandoned = False

    def run(self, body: object) -> StarletteResponse:
        early = self.hooks() if self.has_hooks else None
        return early if early is not None else self.handler(body)

    def hooks(self) -> StarletteResponse | None:
        """Returns ``on_request``'s early answer, if any."""
        ex = self.ex
        hooks = ex.endpoint.hooks
        if hooks.authenticate is not None:
            self.check()
            found = hooks.authenticate(**_credentials(ex, ex.endpoint.auth_names))
            user = middleware.normalize_user(found, ex.endpoint.authenticate_where)
            self.user = user
            self.authenticated = True
            context.update_user(user)
        if hooks.on_request is not None:
            self.check()
            values = {"request": ex.request, "user": self.user, "request_id": ex.request_id}
            early = hooks.on_request(**arguments(hooks.on_request, values))
            if early is not None:
                return render(early)
        return None

    def handler(self, body: object) -> StarletteResponse:
        self.check()
        ex = self.ex
        return render(ex.function(**_arguments(ex, self.signature, self.user, body)))

    def check(self) -> None:
        if self.abandoned or time.monotonic() >= self.ex.deadline:
            raise _DeadlinePassed


def _wants_body(ex: _Exchange, signature: Signature) -> bool:
    return "body" in signature.names and "body" not in ex.params


def _credentials(ex: _Exchange, names: tuple[str, ...]) -> dict[str, object]:
    """The keyword arguments ``authenticate`` asks for (``names``: its parameters, which the
    manifest checked at load time); only those are computed (parsing cookies for a function that
    wants the bearer token alone was a fifth of a small request's CPU)."""
    request = ex.request
    values: dict[str, object] = {}
    parsed: tuple[str | None, str | None, str | None] | None = None
    for name in names:
        index = _AUTHORIZATION.get(name)
        if index is not None:
            if parsed is None:
                parsed = middleware.credentials(request.headers.get("authorization"))
            values[name] = parsed[index]
        elif name == "cookies":
            values[name] = request.cookies
        elif name == "request":
            values[name] = request
        elif name == "headers":
            values[name] = request.headers
        elif name == "request_id":
            values[name] = ex.request_id
    return values


_AUTHORIZATION = {"bearer_token": 0, "username": 1, "password": 2}


def _arguments(
    ex: _Exchange, signature: Signature, user: Mapping[str, Any] | None, body: object
) -> dict[str, object]:
    """The handler's keyword arguments (``body`` already parsed when it asks for it)."""
    params = ex.params
    values: dict[str, object] = {}
    for name in signature.names:
        if name in params:
            values[name] = params[name]
        elif name == "body":
            values[name] = body
        else:
            source = _SOURCES.get(name)
            if source is not None:
                values[name] = source(ex, user)
    return values


def _render_call(function: Callable[..., Any], values: dict[str, object]) -> StarletteResponse:
    return render(function(**values))


_random_bits = random.getrandbits


# Injectable name -> its value for one exchange (``body`` is parsed separately: it is awaited).
_SOURCES: Mapping[str, Callable[[_Exchange, Mapping[str, Any] | None], object]] = {
    "request": lambda ex, user: ex.request,
    "params": lambda ex, user: ex.params,
    "query": lambda ex, user: ex.request.query_params,
    "headers": lambda ex, user: ex.request.headers,
    "cookies": lambda ex, user: ex.request.cookies,
    "user": lambda ex, user: user,
    "request_id": lambda ex, user: ex.request_id,
    "deadline": lambda ex, user: ex.deadline,
}


def _current_user() -> Mapping[str, Any] | None:
    current = context.current()
    return current.user if current is not None else None


def create_app(
    manifest: Manifest,
    *,
    dev: bool = False,
    body_limit: int = DEFAULT_BODY_LIMIT,
    websocket: ASGIApp | None = None,
    on_access: AccessLog | None = None,
) -> QrApp:
    """The ASGI app serving ``manifest``'s routes (see the module docstring)."""
    return QrApp(manifest, dev=dev, body_limit=body_limit, websocket=websocket, on_access=on_access)


def _origin(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"origin":
            return str(value.decode("latin-1"))
    return None


def _with(response: StarletteResponse, headers: Mapping[str, str]) -> StarletteResponse:
    if not headers:
        return response
    for key, value in headers.items():
        if key == "vary" and "vary" in response.headers:
            response.headers["vary"] = f"{response.headers['vary']}, {value}"
        else:
            response.headers[key] = value
    return response


def _too_large(limit: int) -> StarletteResponse:
    return json_response(
        {"error": f"Payload Too Large: the request body is over {limit} bytes"},
        413,
        {"connection": "close"},
    )


def _without_body(send: Send) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return sender


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
