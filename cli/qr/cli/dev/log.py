"""The dev console: one line per request, socket event, job and schedule run.

Everything the runtime logs goes through the standard ``logging`` loggers (``qr.http`` access
lines, ``qr.queues`` job lines, ``qr.socket``, ``qr.schedules``, the user's own loggers);
``DevLogHandler`` renders those records on the ``Output``: a time, a coloured kind, the record's
message, and the traceback for errors. Records that carry the structured ``extra`` fields of an
access or job line (status, duration) get their status coloured. Socket events and schedule runs
arrive as calls (``socket_event``, ``schedule_run``) from the objects that produce them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from qr.cli.console import Output
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
_ANSI = {"cyan": "36", "magenta": "35", "blue": "34", "yellow": "33", "green": "32", "red": "31"}


class DevLog:
    """Writes the console lines. Plain string writes, not rich rendering: a line is written per
    request, so it must cost microseconds (rich takes ~200 µs a line); ANSI colours when the
    ``Output`` is a terminal."""

    def __init__(self, out: Output, clock: Callable[[], float] = time.time) -> None:
        self.out = out
        self.clock = clock
        self._lock = threading.Lock()
        self._second = -1
        self._stamp = ""
        self._dirty = False
        self._flusher: threading.Thread | None = None

    def line(self, kind: str, style: str, message: str, *, failed: bool = False) -> None:
        now = int(self.clock())
        with self._lock:
            if now != self._second:
                self._second, self._stamp = now, time.strftime("%H:%M:%S", time.localtime(now))
            if self.out.rich:
                colour = _ANSI.get(style, "37")
                body = f"\x1b[31m{message}\x1b[0m" if failed else message
                text = f"\x1b[2m{self._stamp}\x1b[0m \x1b[{colour}m{kind:<5}\x1b[0m {body}\n"
            else:
                text = f"{self._stamp} {kind:<5} {message}\n"
            self.out.stream.write(text)
            self._dirty = True
        if self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        with self._lock:
            self._dirty = False
            self.out.stream.flush()

    def _start_flusher(self) -> None:
        """Flush at most every ``FLUSH_INTERVAL`` s (a write syscall per line would cost more
        than the line under load; 50 ms is too short to notice on a terminal)."""
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._flush_loop, name="qr-log", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            if self._dirty:
                try:
                    self.flush()
                except (OSError, ValueError):  # the stream was closed
                    return

    def info(self, message: str) -> None:
        self.line("DEV", "green", message)

    def access(
        self, method: str, path: str, status: int, duration_ms: float, request_id: str
    ) -> None:
        """The HTTP app's access line, called directly (no logging record: see ``AccessLog``)."""
        message = f"{method} {path} {status} {duration_ms:.1f}ms {request_id}"
        self.line("HTTP", "cyan", message, failed=status >= 500)

    def error(self, message: str) -> None:
        self.line("DEV", "red", message, failed=True)

    def problems(self, error: ProjectError) -> None:
        count = len(error.problems)
        body = "\n".join(str(p) for p in error.problems)
        with self._lock:
            self.out.error(
                f"{count} problem{'s' if count != 1 else ''} in the project "
                "(still serving the last good version)",
                body,
            )
            self.out.stream.flush()

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


class DevLogHandler(logging.Handler):
    """Renders log records as dev console lines."""

    def __init__(self, log: DevLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind, style = _kind(record.name)
            message = record.getMessage()
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
