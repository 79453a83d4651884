"""Waiting in tests: every wait has a deadline and fails saying what it waited for and what it saw.

Deadlines are bounds for failures, not speed targets: generous enough for a loaded 2-core machine
(``WAIT``), well inside the per-test limit (120 s, pyproject.toml), so a test that cannot get what
it waits for fails with a message instead of being stopped by pytest-timeout.

* ``until(check, what, output=...)`` polls ``check`` until it returns something truthy.
* ``Lines(stream)`` reads a child's output on a thread, so ``wait_for`` a line and ``rest`` (the
  output up to its end) have deadlines even when the child goes quiet.
* ``reaped(process)`` kills a child that is still running when the block ends (``Popen``'s own
  ``with`` waits for it forever) and ``exited(process)`` waits for its exit with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")

WAIT = 60.0
"""Default deadline in seconds of one wait."""

TAIL = 40
"""Lines of output shown when a wait fails."""


def tail(text: str, lines: int = TAIL) -> str:
    rows = text.rstrip("\n").splitlines()
    shown = "\n".join(f"  | {row}" for row in rows[-lines:])
    if not rows:
        return "  (no output)"
    return (f"  | ... {len(rows) - lines} earlier lines\n" if len(rows) > lines else "") + shown


def until(
    check: Callable[[], T | None],
    what: str,
    timeout: float = WAIT,
    *,
    output: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns a truthy value (returned); after ``timeout`` seconds fail
    naming ``what`` and showing the end of ``output()`` when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"gave up after {timeout:g}s waiting for {what}"
            if output is not None:
                message += f"; the output so far:\n{tail(output())}"
            raise AssertionError(message)
        time.sleep(interval)


_END = object()


class Lines:
    """The lines of a text stream (a child's stdout or stderr), read by a daemon thread, which
    closes the stream at its end."""

    def __init__(self, stream: IO[str], name: str = "output") -> None:
        self.name = name
        self.seen: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line)
        except (OSError, ValueError):  # closed under us: the test is over
            pass
        finally:
            self._queue.put(_END)
            stream.close()  # here: closing it from another thread could block on this read

    def text(self) -> str:
        return "".join(self.seen)

    def _next(self, deadline: float) -> str | None:
        """The next line, ``None`` at the end of the stream; raises ``TimeoutError`` at the
        deadline."""
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None
        if item is _END:
            self._ended = True
            return None
        self.seen.append(item)
        return str(item)

    def wait_for(self, match: Callable[[str], object], what: str, timeout: float = WAIT) -> str:
        """The first new line for which ``match(line)`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._next(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"gave up after {timeout:g}s waiting for {what} in the {self.name}; "
                    f"it was:\n{tail(self.text())}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"the {self.name} ended before {what}; it was:\n{tail(self.text())}"
                )
            if match(line):
                return line

    def rest(self, timeout: float = WAIT) -> str:
        """Everything up to the end of the stream (all of it, including lines seen before)."""
        deadline = time.monotonic() + timeout
        try:
            while self._next(deadline) is not None:
                pass
        except TimeoutError:
            raise AssertionError(
                f"gave up after {timeout:g}s waiting for the {self.name} to end; "
                f"it was:\n{tail(self.text())}"
            ) from None
        return self.text()


def exited(process: subprocess.Popen[Any], what: str, timeout: float = WAIT) -> int:
    """The exit code of ``process`` once it exits; fails after ``timeout`` naming ``what``."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"gave up after {timeout:g}s waiting for {what} to exit") from None


@contextlib.contextmanager
def reaped(process: subprocess.Popen[Any], *, group: bool = False) -> Iterator[None]:
    """Kill ``process`` (its whole process group with ``group``) if it still runs when the block
    ends, however it ends, and collect it."""
    try:
        yield
    finally:
        if process.poll() is None:
            if group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
