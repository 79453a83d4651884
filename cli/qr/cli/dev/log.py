"""The dev console: one line per request, socket event, job and schedule run.

Everything the runtime logs goes through the standard ``logging`` loggers (``qr.http`` access
lines, ``qr.queues`` job lines, ``qr.socket``, ``qr.schedules``, the user's own loggers);
``DevLogHandler`` renders those records on the ``Output``: a time, a coloured kind, the record's
message, and the traceback for errors. Records that carry the structured ``extra`` fields of an
access or job line (status, duration) get their status coloured. Lines from the user's own
loggers end with the current request or job id (``qr.runtime.context``), as on Lambda. Socket
events and schedule runs arrive as calls (``socket_event``, ``schedule_run``) from the objects
that produce them.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from qr.cli.console import Output
from qr.cli.dev.dashboard.feed import AccessLine, ConsoleLine, Feed
from qr.runtime import context
from qr.runtime.errors import ProjectError
from qr.runtime.sockets import SocketEvent

_KINDS = {
    "qr.http": ("HTTP", "cyan"),
    "qr.queues": ("JOB", "magenta"),
    "qr.socket": ("WS", "blue"),
    "qr.schedules": ("SCHED", "yellow"),
    "qr.dev": ("DEV", "green"),
}


FLUSH_INTERVAL = 0.05
_Entry = str | ConsoleLine | AccessLine
"""Text as it is (prints), a console line or an access line."""
_ANSI = {"cyan": "36", "magenta": "35", "blue": "34", "yellow": "33", "green": "32", "red": "31"}


class DevLog:
    """Writes the console lines. Plain strings, not rich rendering: a line is written per request,
    so it must cost a microsecond or two (rich takes ~200 µs a line); ANSI colours when the
    ``Output`` is a terminal.

    Lines are batched: ``line``, ``access`` and ``write`` append what they were given (the
    time and the raw fields, not the text) to a queue, and a daemon thread formats and writes
    what has gathered every ``FLUSH_INTERVAL`` s with one ``write``, and hands the same entries
    to the dashboard's feed. A terminal's stdout is line-buffered (and unbuffered under
    ``PYTHONUNBUFFERED``), so writing each line would cost a system call per request; formatting
    each one on the server's loop cost about a sixth of a small request's CPU (issue 16). A
    ``deque`` append is atomic, so producers (the loop, worker threads) take no lock; the flusher
    takes one so that it and ``direct`` never interleave. Anything else written to the console
    goes through ``direct`` (or calls ``flush`` first) so the order stays as it happened.
    """

    def __init__(self, out: Output, clock: Callable[[], float] = time.time) -> None:
        self.out = out
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp = (-1, "")
        self._queue: deque[_Entry] = deque()
        self._flusher: threading.Thread | None = None
        self.feed: Feed | None = None
        """The dashboard's live feed (``qr.cli.dev.dashboard.feed``): every line goes there too
        (when the batch is written)."""

    def attach(self, feed: Feed) -> None:
        """Send every line to ``feed`` too; its readers see the lines still in the batch."""
        self.feed = feed
        feed.before_read = self.flush

    def line(self, kind: str, style: str, message: str, *, failed: bool = False) -> None:
        self._queue.append((self.clock(), kind, style, message, failed))
        if self._flusher is None:
            self._start_flusher()

    def access(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        user_id: str | None = None,
    ) -> None:
        """The HTTP app's access line, called directly (no logging record: see ``AccessLog``)."""
        self._queue.append((self.clock(), method, path, status, duration_ms, request_id, user_id))
        if self._flusher is None:
            self._start_flusher()

    def write(self, text: str) -> None:
        """Text into the batch as it is: ``print()`` from handlers (see ``capture_prints``)."""
        if text:
            self._queue.append(text)
            if self._flusher is None:
                self._start_flusher()

    def flush(self) -> None:
        """Write the pending lines now."""
        with self._lock:
            self._write_pending()

    @contextmanager
    def direct(self) -> Iterator[Output]:
        """The ``Output``, for writing around the batched lines: pending lines go first, the
        stream is flushed after."""
        with self._lock:
            self._write_pending()
            yield self.out
            self.out.stream.flush()

    def _write_pending(self) -> None:
        queue = self._queue
        entries = [queue.popleft() for _ in range(len(queue))]  # later appends wait their turn
        if entries:
            self.out.stream.write("".join(self._render(entries)))
            if self.feed is not None:
                self.feed.publish_lines(entries)
        self.out.stream.flush()

    def _render(self, entries: list[_Entry]) -> list[str]:
        """The console text of a batch (the costly part of a line, off the server's loop)."""
        second, stamp = self._stamp
        http = ""
        texts: list[str] = []
        append = texts.append
        for entry in entries:
            if isinstance(entry, str):
                append(entry)
                continue
            if int(entry[0]) != second:
                second = int(entry[0])
                stamp = time.strftime("%H:%M:%S", time.localtime(second))
                http = ""
            if len(entry) == 5:
                _, kind, style, message, failed = entry
                append(self._line(stamp, kind, style, message, failed))
                continue
            _, method, path, status, duration_ms, request_id, _ = entry
            if status >= 500:
                message = f"{method} {path} {status} {duration_ms:.1f}ms {request_id}"
                append(self._line(stamp, "HTTP", "cyan", message, True))
                continue
            if not http:  # the start of every access line of this second
                http = self._line(stamp, "HTTP", "cyan", "", False)[:-1]
            append(f"{http}{method} {path} {status} {duration_ms:.1f}ms {request_id}\n")
        self._stamp = (second, stamp)
        return texts

    def _line(self, stamp: str, kind: str, style: str, message: str, failed: bool) -> str:
        if self.out.rich:
            colour = _ANSI.get(style, "37")
            body = f"\x1b[31m{message}\x1b[0m" if failed else message
            return f"\x1b[2m{stamp}\x1b[0m \x1b[{colour}m{kind:<5}\x1b[0m {body}\n"
        return f"{stamp} {kind:<5} {message}\n"

    def _start_flusher(self) -> None:
        """Flush at most every ``FLUSH_INTERVAL`` s (50 ms is too short to notice on a
        terminal)."""
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._flush_loop, name="qr-log", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            if self._queue:
                try:
                    self.flush()
                except (OSError, ValueError):  # the stream was closed
                    return

    @contextmanager
    def capture_prints(self) -> Iterator[None]:
        """Send ``print()`` (``sys.stdout``) through the batch while the block runs, so what
        handlers print stays in order with the console lines. Only when the console is stdout."""
        real = sys.stdout
        if self.out.stream is not real:
            yield
            return
        sys.stdout = _Printed(self, real)
        try:
            yield
        finally:
            sys.stdout = real
            self.flush()

    def info(self, message: str) -> None:
        self.line("DEV", "green", message)

    def error(self, message: str) -> None:
        self.line("DEV", "red", message, failed=True)

    def warning(self, message: str) -> None:
        self.line("WARN", "yellow", message)

    def problems(self, error: ProjectError) -> None:
        count = len(error.problems)
        body = "\n".join(str(p) for p in error.problems)
        with self.direct() as out:
            out.error(
                f"{count} problem{'s' if count != 1 else ''} in the project "
                "(still serving the last good version)",
                body,
            )

    def socket_event(self, event: SocketEvent) -> None:
        parts: list[str] = [event.kind]
        if event.action and event.action != "$default":
            parts.append(event.action)
        parts.append(f"conn {event.connection_id}")
        if event.user_id:
            parts.append(f"user {event.user_id}")
        parts.append(f"{event.duration * 1000:.1f} ms")
        parts.append(event.request_id)
        if event.error:
            parts.append(f"error: {event.error}")
        self.line("WS", "blue", " ".join(parts), failed=event.error is not None)

    def schedule_run(
        self,
        name: str,
        job_id: str,
        duration: float,
        error: str | None,
        next_run: datetime | None,
    ) -> None:
        upcoming = next_run.strftime("%Y-%m-%d %H:%M:%S UTC") if next_run else "never"
        outcome = "ok" if error is None else f"failed: {error}"
        self.line(
            "SCHED",
            "yellow",
            f"{name} job {job_id} {outcome} in {duration * 1000:.1f} ms; next run {upcoming}",
            failed=error is not None,
        )

    def handler(self) -> logging.Handler:
        return DevLogHandler(self)


class _Printed(io.TextIOBase):
    """``sys.stdout`` during ``qr dev``: text goes into the console's batch; anything else a
    library asks of stdout (``fileno``, ``isatty``, ``encoding``, ...) is the real stream's."""

    def __init__(self, log: DevLog, real: IO[str]) -> None:
        self._log = log
        self._real = real

    def write(self, text: str) -> int:
        self._log.write(text)
        return len(text)

    def flush(self) -> None:  # print(..., flush=True)
        self._log.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._real.fileno()

    def isatty(self) -> bool:
        return self._real.isatty()

    def __getattr__(self, name: str) -> Any:  # buffer, errors, ...: the real stream's
        return getattr(self._real, name)

    @property
    def encoding(self) -> str:  # type: ignore[override]  # a read-only attribute at run time too
        return str(getattr(self._real, "encoding", None) or "utf-8")


class DevLogHandler(logging.Handler):
    """Renders log records as dev console lines."""

    def __init__(self, log: DevLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind, style = _kind(record.name)
            message = record.getMessage()
            if kind == "LOG":  # the user's own loggers: which request or job logged this
                now = context.current()
                request_id = getattr(record, "request_id", None) or (now and now.request_id)
                if request_id:
                    message = f"{message} [{request_id}]"
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + self.formatException(record.exc_info)
            status = getattr(record, "status", None)
            failed = record.levelno >= logging.WARNING or (
                isinstance(status, int) and status >= 500
            )
            self.log.line(kind, style, message, failed=failed)
        except Exception:
            self.handleError(record)

    def formatException(self, ei: object) -> str:
        return logging.Formatter().formatException(ei)  # type: ignore[arg-type]


def _kind(name: str) -> tuple[str, str]:
    for prefix, kind in _KINDS.items():
        if name == prefix or name.startswith(prefix + "."):
            return kind
    return ("LOG", "white")
