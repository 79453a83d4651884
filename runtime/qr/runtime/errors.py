"""The runtime's exceptions.

Two families, kept apart on purpose:

* ``HTTPError`` is raised *by handlers* to end a request early with a status code. The HTTP
  layer turns it into a JSON response ``{"error": detail}``.
* ``ProjectError`` is raised *at load time* when the user's project is wrong (a bad file name, an
  invalid ``config``, a bad cron...). It carries every ``Problem`` found in one scan, each naming
  the file (and line where there is one) and how to fix it. The CLI renders it; the test client
  raises it.
* ``HandlerExit`` stands for a ``SystemExit`` (``sys.exit()``) or ``KeyboardInterrupt`` that a
  handler raised itself. Left alone, either would stop the whole process (the dev server, a
  Lambda container's batch); ``handler_exit`` turns it into this ordinary error, so it fails only
  its own request, job or message, which then retries and dead-letters like any other failure.
  A real Ctrl+C (a ``KeyboardInterrupt`` raised by Python's SIGINT handler) is never converted.

CLI-only errors (``QrError``) live in ``qr.cli.errors`` and never reach the runtime.
"""

from __future__ import annotations

import functools
import signal
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus


class HTTPError(Exception):
    """End the current request with ``status``; ``detail`` becomes ``{"error": detail}``."""

    def __init__(
        self,
        status: int,
        detail: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status}")
        if detail is None:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    def __repr__(self) -> str:
        return f"HTTPError({self.status!r}, {self.detail!r})"


@dataclass(frozen=True)
class Problem:
    """One mistake in the user's project: where, what, how to fix."""

    file: str
    """Path relative to the project root (``api/bookmarks/[id].py``, ``qr.yaml``)."""
    line: int | None
    message: str
    hint: str = ""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def sort_key(self) -> tuple[str, int, str, str]:
        """File, then line (a problem without one first), then message."""
        return (self.file, self.line or 0, self.message, self.hint)

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}\n  fix: {self.hint}" if self.hint else text


class ProjectError(Exception):
    """The project cannot be loaded; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems), key=Problem.sort_key))
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} {noun} in the project:\n{body}")


class HandlerExit(Exception):
    """A handler called ``sys.exit()`` (or raised ``KeyboardInterrupt``): a handler error."""

    def __init__(self, where: str, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            what = "called sys.exit()" if exc.code is None else f"called sys.exit({exc.code!r})"
        else:
            what = f"raised {type(exc).__name__}"
        line = _line_in(where, exc)
        at = f" at line {line}" if line else ""
        super().__init__(
            f"{where}: the handler {what}{at}; a handler cannot stop the server, so this counts "
            "as a failure (raise an exception instead)"
        )
        self.where = where


def handler_exit(exc: BaseException, where: str, *, threaded: bool = False) -> HandlerExit | None:
    """``HandlerExit`` for a ``SystemExit``/``KeyboardInterrupt`` raised by handler code, else
    ``None``: a ``KeyboardInterrupt`` that Python's SIGINT handler may have raised (a real Ctrl+C,
    only ever in the main thread) must go on stopping the process.

    ``threaded``: the handler ran in a worker thread, where no signal handler ever runs.
    """
    if isinstance(exc, SystemExit):
        return HandlerExit(where, exc)
    if isinstance(exc, KeyboardInterrupt) and (threaded or not _sigint_raises()):
        return HandlerExit(where, exc)
    return None


def _sigint_raises() -> bool:
    """Whether the SIGINT handler in place raises ``KeyboardInterrupt`` in the main thread:
    Python's default, or asyncio's ``Runner`` (on a second Ctrl+C). Servers such as uvicorn
    install their own, which only set a flag."""
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGINT)
    while isinstance(handler, functools.partial):
        handler = handler.func
    return handler is signal.default_int_handler or getattr(handler, "__name__", "") == "_on_sigint"


def _line_in(where: str, exc: BaseException) -> int | None:
    """The line of ``where`` (a handler file) nearest to where ``exc`` was raised."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.replace("\\", "/").endswith("/" + where):
            line = frame.lineno
    return line
