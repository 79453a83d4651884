"""Calling user functions with arguments chosen by parameter name.

Every kind of handler (HTTP routes and middleware hooks, queue jobs, socket messages, schedules)
asks only for what it uses: ``def get(id, user)``. The manifest has already checked at load time
that each name is one qr provides, so here a function is inspected once (``parameters``, cached)
and each call passes exactly the values it asked for (``call_with``).

``call_with`` runs ``async def`` functions on the event loop and plain ``def`` functions in
AnyIO's worker thread pool, so a blocking handler never stalls other requests. The worker runs in a
copy of the caller's ``contextvars`` context, so ``qr.runtime.context.current()`` (the user, the
request id) is the same inside a sync handler as around it. ``timeout`` bounds the call; a sync
function that overruns is abandoned (Python cannot stop a thread) and its result ignored.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from qr.runtime import context as context_module
from qr.runtime._loader import display_name
from qr.runtime.errors import HandlerExit, handler_exit

T = TypeVar("T")


@dataclass(frozen=True)
class Signature:
    """What a function asks for, computed once per function."""

    names: tuple[str, ...]
    """Parameter names qr fills in (``**kwargs`` is never filled)."""
    required: frozenset[str]
    """Names without a default: a missing value for one of these is a bug in the caller."""
    is_async: bool


@functools.lru_cache(maxsize=4096)
def parameters(function: Callable[..., Any]) -> Signature:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: call them bare
        return Signature((), frozenset(), _is_async(function))
    names: list[str] = []
    required: set[str] = set()
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        names.append(parameter.name)
        if parameter.default is parameter.empty:
            required.add(parameter.name)
    return Signature(tuple(names), frozenset(required), _is_async(function))


def arguments(function: Callable[..., Any], values: Mapping[str, object]) -> dict[str, object]:
    """The keyword arguments ``function`` asked for, taken from ``values``."""
    signature = parameters(function)
    kwargs: dict[str, object] = {}
    for name in signature.names:
        if name in values:
            kwargs[name] = values[name]
        elif name in signature.required:
            raise TypeError(
                f"{_describe(function)} asks for {name!r}, which is not available here "
                f"(available: {', '.join(sorted(values))})"
            )
    return kwargs


async def call_with(
    function: Callable[..., Any],
    values: Mapping[str, object],
    *,
    timeout: float | None = None,
) -> Any:
    """Call ``function`` with the values it names; await it or run it in a worker thread.

    Raises ``TimeoutError`` when ``timeout`` seconds pass first.
    """
    kwargs = arguments(function, values)
    if timeout is None:
        return await call(function, kwargs)
    with anyio.fail_after(timeout):
        return await call(function, kwargs)


async def call(function: Callable[..., Any], kwargs: dict[str, object]) -> Any:
    """Await ``function(**kwargs)``, or run it in a worker thread when it is not async.

    A ``sys.exit()`` (or ``KeyboardInterrupt``) in ``function`` becomes ``HandlerExit``.
    """
    if not parameters(function).is_async:
        return await in_thread(function, kwargs)
    try:
        return await function(**kwargs)
    except (SystemExit, KeyboardInterrupt) as exc:
        error = handler_exit(exc, where(function))
        if error is None:
            raise
        raise error from exc


async def in_thread(function: Callable[..., Any], kwargs: dict[str, object]) -> Any:
    """Run a sync function in the worker pool, in a copy of the current context."""
    return await in_context(contextvars.copy_context(), function, **kwargs)


async def in_context(
    context: contextvars.Context, function: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Run a sync function in the worker pool inside ``context`` (several hops of one request
    can share one copy). On cancellation the worker is abandoned, its result ignored.

    A ``sys.exit()`` (or ``KeyboardInterrupt``) in ``function`` becomes ``HandlerExit``.
    """
    try:
        result: T = await anyio.to_thread.run_sync(
            functools.partial(context.run, function, *args, **kwargs), abandon_on_cancel=True
        )
    except (SystemExit, KeyboardInterrupt) as exc:  # raised in a worker thread: never a signal
        raise HandlerExit(where(function), exc) from exc
    return result


def where(function: Callable[..., Any]) -> str:
    """The file of the current handler (``api/items.py``), else the function's own name."""
    current = context_module.current()
    return current.handler if current is not None and current.handler else _describe(function)


def _is_async(function: Callable[..., Any]) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def _describe(function: Callable[..., Any]) -> str:
    name = getattr(function, "__qualname__", repr(function))
    module = getattr(function, "__module__", None) or ""
    return f"{display_name(module)}:{name}()" if module else f"{name}()"
