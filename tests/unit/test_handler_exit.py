"""``handler_exit``: which ``SystemExit``/``KeyboardInterrupt`` is a handler's fault."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from qr.runtime.errors import HandlerExit, handler_exit


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_sys_exit_is_always_a_handler_error_naming_the_file_and_code() -> None:
    error = handler_exit(_raised(SystemExit(3)), "queues/a.py")
    assert isinstance(error, HandlerExit)
    assert str(error).startswith("queues/a.py: the handler called sys.exit(3)")
    bare = handler_exit(_raised(SystemExit()), "queues/a.py")
    assert bare is not None and "called sys.exit()" in str(bare)


def test_keyboard_interrupt_under_pythons_own_sigint_handler_is_a_real_ctrl_c() -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert handler_exit(_raised(KeyboardInterrupt()), "api/x.py") is None
    assert handler_exit(_raised(KeyboardInterrupt()), "api/x.py", threaded=True) is not None


@pytest.fixture
def server_sigint() -> Iterator[None]:
    """A SIGINT handler that sets a flag, as uvicorn's does."""
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("server_sigint")
def test_keyboard_interrupt_under_a_servers_sigint_handler_is_the_handlers_own() -> None:
    error = handler_exit(_raised(KeyboardInterrupt()), "api/x.py")
    assert error is not None and "raised KeyboardInterrupt" in str(error)


def test_keyboard_interrupt_outside_the_main_thread_is_never_a_signal() -> None:
    found: list[HandlerExit | None] = []
    thread = threading.Thread(target=lambda: found.append(handler_exit(KeyboardInterrupt(), "f")))
    thread.start()
    thread.join(timeout=10)
    assert found and found[0] is not None
