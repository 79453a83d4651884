"""What a handler module may contain: its ``config``, the names its functions may ask for.

Used by the manifest scanner (``qr.runtime.manifest``) through ``_HandlerChecks``, a mixin that
only needs the scanner's ``fail`` and ``line_of``. The config dataclasses are what the rest of qr
reads (``Route.config``, ``Queue.config`` ...); they are re-exported by ``qr.runtime.manifest``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Literal

from qr.runtime._suggest import did_you_mean
from qr.runtime.flow import RateLimit

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Names a handler may ask for, by kind of handler (path parameters are added per route).
HTTP_INJECTABLES = frozenset(
    {"request", "body", "params", "query", "headers", "cookies", "user", "request_id", "deadline"}
)
QUEUE_INJECTABLES = frozenset(
    {
        "payload", "job", "user", "params", "job_id", "queue_name", "group_id",
        "sequence_number", "received_count", "queued_at", "deadline", "request_id",
    }
)  # fmt: skip
SCHEDULE_INJECTABLES = frozenset(
    {"job", "job_id", "schedule_name", "scheduled_at", "deadline", "request_id"}
)
SOCKET_INJECTABLES = frozenset({"data", "connection_id", "user", "request_id", "action"})

HTTP_HOOKS: Mapping[str, frozenset[str]] = {
    "authenticate": frozenset(
        {"bearer_token", "username", "password", "cookies", "request", "headers", "request_id"}
    ),
    "on_request": frozenset({"request", "user", "request_id"}),
    "on_response": frozenset({"request", "response", "user", "request_id"}),
    "on_error": frozenset({"error", "request", "user", "request_id"}),
}
SOCKET_HOOKS: Mapping[str, frozenset[str]] = {
    "on_connect": frozenset({"request", "connection_id", "request_id"}),
    "authenticate": frozenset({"data", "connection_id", "request", "request_id"}),
    "on_disconnect": frozenset({"connection_id", "user", "request_id"}),
    "on_online": frozenset({"user", "connection_id", "request_id"}),
    "on_offline": frozenset({"user", "connection_id", "request_id"}),
}

HTTP_TIMEOUT_MAX = 29
JOB_TIMEOUT_MAX = 900
"""Lambda's maximum function timeout (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html)."""
KEEP_RESULTS_MAX = 365 * 86_400
FUNCTION_MARGIN = 5
"""Seconds the function outlives its longest handler (or queue batch), so the runtime can report
a timeout and answer SQS's ``batchItemFailures``."""
SOCKET_TIMEOUT_MAX = 29
"""API Gateway stops waiting for a WebSocket integration after 29 s, a quota that cannot be raised
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html)."""
CORS_MAX_AGE = (-1, 86400)
"""API Gateway HTTP APIs take a CORS ``maxAge`` of -1 (no caching) to 86400 seconds (API Gateway V2
API reference, ``Cors``: https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid.html)."""


@dataclass(frozen=True)
class Cors:
    enabled: bool = True
    origins: tuple[str, ...] = ("*",)
    headers: tuple[str, ...] = ("*",)
    expose_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: int = 600


@dataclass(frozen=True)
class RouteConfig:
    timeout: float = 10
    accepts: tuple[str, ...] | None = None
    cors: Cors = field(default_factory=Cors)
    cache: str | None = None
    """The Cache-Control header value (``config["cache"] = 60`` -> ``"max-age=60"``)."""
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Backoff:
    strategy: Literal["exponential", "fixed"] = "exponential"
    initial: float = 2
    max: float = 300
    jitter: bool = True


@dataclass(frozen=True)
class QueueConfig:
    timeout: float = 30
    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    concurrency: int = 10
    batch_size: int = 10
    keep_results: int = 86_400
    """Seconds a finished job's state (status, result, error) is kept; 0 keeps no state."""
    status_route: bool = False
    """``queue.http`` answers with ``Location: /_jobs/{id}``, and that route serves the state."""
    rate_limit: RateLimit | None = None


def batch_waves(config: QueueConfig, *, fifo: bool) -> int:
    """How many job timeouts one full batch may take on Lambda (``qr.runtime.aws.batch``): a FIFO
    batch runs one job after another; a standard batch runs ``concurrency`` jobs at a time."""
    if fifo:
        return config.batch_size
    return math.ceil(config.batch_size / max(1, config.concurrency))


def batch_seconds(config: QueueConfig, *, fifo: bool) -> int:
    """The function timeout a full batch needs: its waves of ``timeout`` plus the margin."""
    return batch_waves(config, fifo=fifo) * math.ceil(config.timeout) + FUNCTION_MARGIN


def fitting_batch_size(config: QueueConfig, *, fifo: bool) -> int:
    """The largest batch size up to ``config.batch_size`` whose batch fits in Lambda's 900 s.

    A batch that runs in one wave always fits: its jobs are bounded by the function itself, as
    any single handler is. 1 when nothing larger fits.
    """
    for size in range(config.batch_size, 1, -1):
        candidate = replace(config, batch_size=size)
        if (
            batch_waves(candidate, fifo=fifo) == 1
            or batch_seconds(candidate, fifo=fifo) <= JOB_TIMEOUT_MAX
        ):
            return size
    return 1


@dataclass(frozen=True)
class JobConfig:
    """``config`` of a schedule or socket handler."""

    timeout: float = 30


class _HandlerChecks:
    """Config and signature validation; problems go through ``fail`` like every other scan problem."""

    def fail(self, file: str, line: int | None, message: str, hint: str) -> None:
        raise NotImplementedError

    def line_of(self, relative: str, name: str) -> int | None:
        raise NotImplementedError

    def route_config(
        self, relative: str, module: ModuleType, *, has_handler: bool
    ) -> RouteConfig | None:
        raw = self.config_dict(relative, module, _ROUTE_CONFIG_KEYS)
        if raw is None:
            return None
        line = self.line_of(relative, "config")
        values: dict[str, Any] = {}
        ok = True

        def bad(key: str, expected: str) -> None:
            nonlocal ok
            ok = False
            self.fail(
                relative,
                line,
                f"config[{key!r}] must be {expected}, got {raw[key]!r}",
                f"set config[{key!r}] to {expected}, or remove it for the default",
            )

        if "timeout" in raw:
            timeout = raw["timeout"]
            if _is_number(timeout) and 0 < timeout <= HTTP_TIMEOUT_MAX:
                values["timeout"] = float(timeout)
            else:
                bad(
                    "timeout",
                    f"a number of seconds above 0 and at most {HTTP_TIMEOUT_MAX} (API Gateway's limit)",
                )
        if "accepts" in raw:
            accepts = raw["accepts"]
            if isinstance(accepts, str):
                accepts = [accepts]
            if (
                isinstance(accepts, list | tuple)
                and accepts
                and all(isinstance(a, str) and "/" in a for a in accepts)
            ):
                values["accepts"] = tuple(a.lower() for a in accepts)
            else:
                bad("accepts", "a list of media types such as ['application/json']")
        if "cors" in raw:
            cors = _cors(raw["cors"])
            if cors is None:
                bad(
                    "cors",
                    "True, False or a dict with origins/headers/expose_headers/credentials/max_age",
                )
            elif isinstance(cors, str):
                ok = False
                self.fail(
                    relative, line, cors, "browsers cap it lower anyway (2 hours in Chromium)"
                )
            else:
                values["cors"] = cors
        if "cache" in raw:
            cache = raw["cache"]
            if isinstance(cache, int) and not isinstance(cache, bool) and cache >= 0:
                values["cache"] = f"max-age={cache}" if cache else "no-store"
            elif isinstance(cache, str) and cache.strip():
                values["cache"] = cache.strip()
            elif cache is False:
                values["cache"] = "no-store"
            else:
                bad("cache", "seconds (int) or a Cache-Control string")
        if "methods" in raw:
            methods = raw["methods"]
            if not has_handler:
                ok = False
                self.fail(
                    relative,
                    line,
                    "config['methods'] only applies to a module-level handler",
                    "remove it, or rename your function to handler",
                )
            elif (
                isinstance(methods, list | tuple)
                and methods
                and all(isinstance(m, str) and m.upper() in HTTP_METHODS for m in methods)
            ):
                values["methods"] = tuple(dict.fromkeys(m.upper() for m in methods))
            else:
                bad("methods", f"a list of HTTP methods from {', '.join(HTTP_METHODS)}")
        return RouteConfig(**values) if ok else None

    def config_dict(
        self, relative: str, module: ModuleType, known: Mapping[str, str]
    ) -> dict[str, Any] | None:
        raw = getattr(module, "config", None)
        if raw is None:
            return {}
        line = self.line_of(relative, "config")
        if not isinstance(raw, dict):
            self.fail(
                relative,
                line,
                f"config must be a dict, got {type(raw).__name__}",
                'write config = {"timeout": 10}',
            )
            return None
        ok = True
        for key in raw:
            if key not in known:
                ok = False
                listing = ", ".join(f"{k} ({v})" for k, v in known.items())
                self.fail(
                    relative,
                    line,
                    f"config key {key!r} does not exist.{did_you_mean(str(key), known)}",
                    f"known keys: {listing}",
                )
        return raw if ok else None

    def check_signature(
        self,
        relative: str,
        module: ModuleType,
        function_name: str,
        allowed: frozenset[str] | set[str],
        what: str,
    ) -> None:
        function = getattr(module, function_name, None)
        if not callable(function):
            return
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return
        line = getattr(getattr(function, "__code__", None), "co_firstlineno", None) or self.line_of(
            relative, function_name
        )
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            if parameter.kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.POSITIONAL_ONLY,
            ):
                self.fail(
                    relative,
                    line,
                    f"{function_name}() takes *args or positional-only parameters; qr passes everything by name",
                    "use named parameters",
                )
                continue
            if parameter.name not in allowed and parameter.default is inspect.Parameter.empty:
                self.fail(
                    relative,
                    line,
                    f"{what} {function_name}() asks for {parameter.name!r}, which qr does not provide."
                    f"{did_you_mean(parameter.name, allowed)}",
                    f"ask only for: {', '.join(sorted(allowed))}",
                )

    def require_handler(
        self, relative: str, module: ModuleType, allowed: frozenset[str], what: str, example: str
    ) -> None:
        handler = getattr(module, "handler", None)
        if handler is None:
            self.fail(relative, None, "has no handler function", f"define one: {example}")
        elif not callable(handler):
            self.fail(
                relative,
                self.line_of(relative, "handler"),
                "handler must be a function",
                f"define it with def (or async def): {example}",
            )
        else:
            self.check_signature(relative, module, "handler", allowed, what)

    def queue_config(self, relative: str, module: ModuleType, *, fifo: bool) -> QueueConfig | None:
        raw = self.config_dict(relative, module, _QUEUE_CONFIG_KEYS)
        if raw is None:
            return None
        line = self.line_of(relative, "config")
        values: dict[str, Any] = {}
        ok = True

        def integer(key: str, low: int, high: int, why: str = "") -> None:
            nonlocal ok
            value = raw[key]
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                values[key] = value
            else:
                ok = False
                self.fail(
                    relative,
                    line,
                    f"config[{key!r}] must be a whole number from {low} to {high}{why}, got {value!r}",
                    f"set config[{key!r}] to a whole number from {low} to {high}",
                )

        if "timeout" in raw:
            timeout = raw["timeout"]
            if _is_number(timeout) and 0 < timeout <= JOB_TIMEOUT_MAX:
                values["timeout"] = float(timeout)
            else:
                ok = False
                self.fail(
                    relative,
                    line,
                    f"config['timeout'] must be seconds above 0 and at most {JOB_TIMEOUT_MAX} (Lambda's limit), got {timeout!r}",
                    f"set config['timeout'] to a number of seconds up to {JOB_TIMEOUT_MAX}",
                )
        if "max_attempts" in raw:
            integer("max_attempts", 1, 1000, " (SQS maxReceiveCount)")
        if "concurrency" in raw:
            integer("concurrency", 2, 1000, " (SQS event source maximum concurrency)")
        if "batch_size" in raw:
            integer("batch_size", 1, 10)
        if "keep_results" in raw:
            integer("keep_results", 0, KEEP_RESULTS_MAX, " (seconds; 0 keeps no job state)")
        if "status_route" in raw:
            if isinstance(raw["status_route"], bool):
                values["status_route"] = raw["status_route"]
            else:
                ok = False
                self.fail(
                    relative,
                    line,
                    f"config['status_route'] must be True or False, got {raw['status_route']!r}",
                    "write config['status_route'] = True (or leave it out)",
                )
        if values.get("status_route") and values.get("keep_results") == 0:
            ok = False
            self.fail(
                relative,
                line,
                "config['status_route'] is on but config['keep_results'] is 0: the route would "
                "have no state to show",
                "keep results (e.g. 'keep_results': 3600) or turn the status route off",
            )
        if "backoff" in raw:
            backoff = _backoff(raw["backoff"])
            if backoff is None:
                ok = False
                self.fail(
                    relative,
                    line,
                    f"config['backoff'] must be 'exponential', 'fixed' or a dict with strategy/initial/max/jitter, got {raw['backoff']!r}",
                    "e.g. {'strategy': 'exponential', 'initial': 2, 'max': 300} (seconds; max 43200, the SQS visibility limit)",
                )
            else:
                values["backoff"] = backoff
        if "rate_limit" in raw:
            rate_limit = RateLimit.parse(raw["rate_limit"])
            if isinstance(rate_limit, str):
                ok = False
                self.fail(
                    relative,
                    line,
                    rate_limit,
                    "e.g. config['rate_limit'] = {'limit': 10, 'per': 1.0, 'key': 'user'} "
                    "(key: 'user', 'group' or a payload field; optional)",
                )
            else:
                values["rate_limit"] = rate_limit
        if not ok:
            return None
        config = QueueConfig(**values)
        fitted = fitting_batch_size(config, fifo=fifo)
        if fitted == config.batch_size:
            return config
        if "batch_size" not in raw:
            return replace(config, batch_size=fitted)  # the default shrinks to what fits
        how = (
            "a FIFO queue runs its batch one job after another"
            if fifo
            else f"this queue runs its batch {config.concurrency} jobs at a time"
        )
        waves = batch_waves(config, fifo=fifo)
        self.fail(
            relative,
            line,
            f"config['batch_size'] {config.batch_size} does not fit in one Lambda invocation: {how}, "
            f"so a batch may take {waves} x {config.timeout:g} s + {FUNCTION_MARGIN} s = "
            f"{batch_seconds(config, fifo=fifo)} s, over Lambda's {JOB_TIMEOUT_MAX} s maximum",
            f"use a batch_size of at most {fitted}, or a shorter timeout"
            + ("" if fifo else " or a higher concurrency"),
        )
        return None

    # -- socket/ -------------------------------------------------------------------------

    def job_config(
        self, relative: str, module: ModuleType, *, socket: bool = False
    ) -> JobConfig | None:
        """``config`` of a schedule, or of a socket handler (``socket=True``: at most 29 s)."""
        maximum = SOCKET_TIMEOUT_MAX if socket else JOB_TIMEOUT_MAX
        default = SOCKET_TIMEOUT_MAX if socket else JobConfig.timeout
        why = (
            "API Gateway's WebSocket integration timeout; push a queue job for longer work"
            if socket
            else "Lambda's limit"
        )
        raw = self.config_dict(
            relative, module, {"timeout": f"seconds, default {default:g}, max {maximum}"}
        )
        if raw is None:
            return None
        if "timeout" not in raw:
            return JobConfig(default)
        timeout = raw["timeout"]
        if _is_number(timeout) and 0 < timeout <= maximum:
            return JobConfig(float(timeout))
        self.fail(
            relative,
            self.line_of(relative, "config"),
            f"config['timeout'] must be seconds above 0 and at most {maximum} ({why}), got {timeout!r}",
            f"set config['timeout'] to a number of seconds up to {maximum}",
        )
        return None

    # -- schedules/ ----------------------------------------------------------------------


_ROUTE_CONFIG_KEYS = {
    "timeout": f"seconds, default 10, max {HTTP_TIMEOUT_MAX}",
    "accepts": "accepted request media types",
    "cors": "True/False or CORS settings",
    "cache": "Cache-Control seconds or string",
    "methods": "methods served by handler",
}
_QUEUE_CONFIG_KEYS = {
    "timeout": f"seconds per job, default 30, max {JOB_TIMEOUT_MAX}",
    "max_attempts": "receives before the dead-letter queue, default 3",
    "backoff": "'exponential' or 'fixed' or a dict",
    "concurrency": "jobs at once, default 10",
    "batch_size": "jobs per batch, 1-10",
    "keep_results": "seconds to keep a finished job's state, default 86400, 0 = none",
    "status_route": "serve GET /_jobs/{id} for this queue's jobs, default False",
    "rate_limit": "{limit, per, key}: jobs started per window",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cors(value: object) -> Cors | str | None:
    """The CORS settings, ``None`` for a malformed value, or the message of a value out of range."""
    if value is True:
        return Cors()
    if value is False:
        return Cors(enabled=False)
    if not isinstance(value, dict):
        return None
    known = {"origins", "headers", "expose_headers", "credentials", "max_age"}
    if set(value) - known:
        return None
    values: dict[str, Any] = {}
    for key in ("origins", "headers", "expose_headers"):
        if key in value:
            items = [value[key]] if isinstance(value[key], str) else value[key]
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                return None
            values[key] = tuple(items)
    if "credentials" in value:
        if not isinstance(value["credentials"], bool):
            return None
        values["credentials"] = value["credentials"]
    if "max_age" in value:
        max_age = value["max_age"]
        low, high = CORS_MAX_AGE
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            return None
        if not low <= max_age <= high:
            return (
                f"config['cors']['max_age'] must be {low} (no caching) to {high} seconds, "
                f"API Gateway's range, got {max_age}"
            )
        values["max_age"] = max_age
    return Cors(**values)


def _backoff(value: object) -> Backoff | None:
    if value in ("exponential", "fixed"):
        return Backoff(strategy="fixed" if value == "fixed" else "exponential")
    if not isinstance(value, dict) or set(value) - {"strategy", "initial", "max", "jitter"}:
        return None
    strategy = value.get("strategy", "exponential")
    initial = value.get("initial", 2)
    maximum = value.get("max", 300)
    jitter = value.get("jitter", True)
    if strategy not in ("exponential", "fixed") or not isinstance(jitter, bool):
        return None
    if not (_is_number(initial) and _is_number(maximum) and 0 <= initial <= maximum <= 43200):
        return None
    return Backoff(strategy, float(initial), float(maximum), jitter)
