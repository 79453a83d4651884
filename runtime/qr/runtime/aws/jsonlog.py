"""Log lines as JSON for CloudWatch: one object per line, easy to filter with Logs Insights.

Every line has ``time``, ``level``, ``logger`` and ``message``, plus what is running (from
``qr.runtime.context``): ``request_id`` (the HTTP request, job, schedule run or socket message id),
``kind`` and ``handler`` (the handler file), and ``error`` with the traceback when an exception
is attached. ``configure()`` puts the formatter on the root logger's handlers (Lambda's own handler
included) and sets the level from ``LOG_LEVEL`` (default ``INFO``; boto's own INFO lines are kept
out unless it is ``DEBUG``).

On Lambda the runtime interface client sends each record as one frame of its telemetry pipe.
Without that pipe (the runtime interface emulator, ``qr dev --docker``) it writes the record to
stdout as is: there each record ends with a newline, or line-based collectors (Docker's log
driver) hold it back until some later output happens to end a line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from qr.runtime import context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        now = context.current()
        request_id = getattr(record, "request_id", None) or (now.request_id if now else None)
        if request_id:
            line["request_id"] = request_id
        if now is not None:
            line["kind"] = now.kind
            if now.handler:
                line["handler"] = now.handler
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class _LineFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record) + "\n"


def _writes_records_as_is(handler: logging.Handler) -> bool:
    """The runtime interface client's handler writing to plain stdout (no telemetry pipe)."""
    return type(getattr(handler, "log_sink", None)).__name__ == "StandardLogSink"


def configure(level: str | None = None) -> None:
    """JSON lines on every root handler (adding one on stderr if there is none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(
            _LineFormatter() if _writes_records_as_is(handler) else JsonFormatter()
        )
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    root.setLevel(logging.getLevelName(name) if name in logging.getLevelNamesMapping() else "INFO")
    if root.level > logging.DEBUG:  # boto's INFO lines ("Found credentials ...") are noise here
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
