"""JSON log lines: one record per line, also through the runtime interface client's stdout sink."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from qr.runtime.aws import jsonlog


class StandardLogSink:
    """Named like the runtime interface client's sink for plain stdout (no telemetry pipe)."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def log(self, msg: str) -> None:
        self.written.append(msg)


class _ClientHandler(logging.Handler):
    """Like the client's ``LambdaLoggerHandler``: hands the formatted record to its sink as is."""

    def __init__(self) -> None:
        super().__init__()
        self.log_sink = StandardLogSink()

    def emit(self, record: logging.LogRecord) -> None:
        self.log_sink.log(self.format(record))


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_records_through_the_stdout_sink_end_with_a_newline(root: logging.Logger) -> None:
    client, stream = _ClientHandler(), logging.StreamHandler(io.StringIO())
    root.handlers[:] = [client, stream]
    jsonlog.configure("INFO")
    logging.getLogger("app").info("one")
    logging.getLogger("app").info("two")
    assert [line[-1] for line in client.log_sink.written] == ["\n", "\n"]
    assert json.loads(client.log_sink.written[0])["message"] == "one"
    # a StreamHandler ends lines itself: no blank line between records
    assert stream.stream.getvalue().count("\n") == 2
