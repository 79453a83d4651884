"""Injection by parameter name (``call_with``), without IO."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import anyio
import pytest

from qr.runtime.http.injection import arguments, call_with, parameters

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_only_the_named_values_are_passed() -> None:
    def handler(id: str, user: object = None) -> None: ...

    assert arguments(handler, {"id": "1", "user": "u", "body": b""}) == {"id": "1", "user": "u"}


def test_defaults_fill_what_is_missing() -> None:
    def handler(id: str, page: int = 1) -> None: ...

    assert arguments(handler, {"id": "1"}) == {"id": "1"}


def test_missing_required_name_is_a_clear_error() -> None:
    def handler(id: str) -> None: ...

    with pytest.raises(TypeError, match=r"asks for 'id'.*available: body"):
        arguments(handler, {"body": None})


def test_var_keyword_is_never_filled() -> None:
    def handler(id: str, **rest: Any) -> None: ...

    assert parameters(handler).names == ("id",)
    assert arguments(handler, {"id": "1", "other": 2}) == {"id": "1"}


def test_parameters_are_cached_per_function() -> None:
    def handler(a: int) -> None: ...

    assert parameters(handler) is parameters(handler)


def test_sync_function_runs_in_a_worker_thread_with_the_callers_context() -> None:
    def handler(x: int) -> tuple[int, bool, str]:
        return x * 2, threading.current_thread() is threading.main_thread(), VAR.get()

    async def main() -> tuple[int, bool, str]:
        VAR.set("from caller")
        result: tuple[int, bool, str] = await call_with(handler, {"x": 21})
        return result

    assert anyio.run(main) == (42, False, "from caller")


def test_async_function_is_awaited() -> None:
    async def handler(x: int) -> int:
        await anyio.sleep(0)
        return x + 1

    async def main() -> Any:
        return await call_with(handler, {"x": 1})

    assert anyio.run(main) == 2


def test_callable_object_with_async_call() -> None:
    class Hook:
        async def __call__(self, data: str) -> str:
            return data.upper()

    async def main() -> Any:
        return await call_with(Hook(), {"data": "x"})

    assert anyio.run(main) == "X"


def test_timeout_raises_timeout_error() -> None:
    async def handler() -> None:
        await anyio.sleep(30)

    async def main() -> None:
        await call_with(handler, {}, timeout=0.01)

    with pytest.raises(TimeoutError):
        anyio.run(main)
