"""The current request or job id on every log line.

``RequestIdFilter`` sets ``record.request_id`` from ``qr.runtime.context``: the HTTP request id,
queue job id, schedule run id or socket message id of the code that logged, or ``"-"`` outside any
invocation (a record that already has one, e.g. through ``extra=``, keeps it). Whoever configures
logging for a platform (``qr dev``, the Lambda entry point) attaches it to its handlers and uses a
format with ``%(request_id)s``; ``FORMAT`` is qr's default. It is a handler filter, not a logger
filter, because a logger's filters do not see records from its child loggers.
"""

from __future__ import annotations

import logging

from qr.runtime import context

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            now = context.current()
            record.request_id = now.request_id if now is not None else "-"
        return True


def attach(handler: logging.Handler) -> logging.Handler:
    """Add the filter to ``handler`` once; returns the handler."""
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())
    return handler
