"""The dev console's line batching: nothing lost, nothing out of order."""

from __future__ import annotations

import io
import logging
import sys
import threading

import pytest

from qr.cli.console import Output
from qr.cli.dev.dashboard.feed import Feed
from qr.cli.dev.log import DevLog
from qr.runtime import context
from tests.waiting import until


def make_log() -> tuple[DevLog, io.StringIO]:
    stream = io.StringIO()
    return DevLog(Output(stream, rich=False), clock=lambda: 0.0), stream


def test_lines_wait_for_a_flush_then_go_out_in_one_piece() -> None:
    log, stream = make_log()
    log.access("GET", "/a", 200, 1.25, "r1")
    log.access("POST", "/b", 503, 3.0, "r2")
    assert stream.getvalue() == ""  # batched, not a write per line
    log.flush()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "HTTP  GET /a 200 1.2ms r1",
        "HTTP  POST /b 503 3.0ms r2",
    ]


def test_direct_output_comes_after_the_lines_logged_before_it() -> None:
    log, stream = make_log()
    log.info("before")
    with log.direct() as out:
        out.line("   http://localhost:8000")
    log.info("after")
    log.flush()
    text = stream.getvalue()
    assert text.index("before") < text.index("http://localhost") < text.index("after")


def test_lines_from_many_threads_are_all_written() -> None:
    log, stream = make_log()

    def write(n: int) -> None:
        for i in range(500):
            log.line("JOB", "magenta", f"t{n} {i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2000
    for n in range(4):  # each thread's lines in its own order
        mine = [int(line.rsplit(" ", 1)[1]) for line in lines if f" t{n} " in line]
        assert mine == list(range(500))


def test_the_flusher_thread_writes_without_being_asked() -> None:
    log, stream = make_log()
    log.info("soon")
    flusher = log._flusher
    assert flusher is not None and flusher.daemon
    until(lambda: "soon" in stream.getvalue(), "the flusher (every 50 ms)", output=stream.getvalue)


def test_prints_join_the_batch_in_order_while_captured(capsys: pytest.CaptureFixture[str]) -> None:
    real = sys.stdout
    log = DevLog(Output(real, rich=False), clock=lambda: 0.0)
    with log.capture_prints():
        log.info("first")
        print("printed by a handler")
        log.info("last")
        assert sys.stdout is not real and not sys.stdout.isatty()
        assert sys.stdout.buffer is real.buffer  # what else libraries use is the real stream's
    assert sys.stdout is real
    text = capsys.readouterr().out
    assert text.index("first") < text.index("printed by a handler") < text.index("last")


def test_prints_are_left_alone_when_the_console_is_not_stdout() -> None:
    log, _ = make_log()
    real = sys.stdout
    with log.capture_prints():
        assert sys.stdout is real


def test_the_users_log_lines_carry_the_current_request_id() -> None:
    log, stream = make_log()
    handler = log.handler()
    logger = logging.getLogger("tests.dev_log.app")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with context.invocation(context.Invocation("http", "req-123")):
            logger.info("saved %s", "bookmark 5")
        logger.info("outside any request")
    finally:
        logger.removeHandler(handler)
    log.flush()
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["LOG   saved bookmark 5 [req-123]", "LOG   outside any request"]


def test_a_feed_reader_sees_lines_still_in_the_batch_as_events() -> None:
    log, _ = make_log()
    feed = Feed()
    log.attach(feed)
    log.access("GET", "/a", 200, 1.25, "r1", "alice")
    log.line("JOB", "magenta", "job j1 ok")
    log.write("printed\n")  # in the ring, but no event
    log.access("POST", "/b", 502, 3.0, "r2")
    events, dropped, position = feed.since(0)  # no flush asked for: the read flushes
    assert dropped == 0 and position == 4
    assert [(e["kind"], e["seq"]) for e in events] == [
        ("log", 1),
        ("request", 1),
        ("log", 2),
        ("log", 4),
        ("request", 4),
    ]
    assert events[0]["message"] == "GET /a 200 1.2ms r1" and events[0]["level"] == "info"
    assert events[1] == {
        "kind": "request",
        "time": 0.0,
        "seq": 1,
        "method": "GET",
        "path": "/a",
        "status": 200,
        "duration_ms": 1.2,
        "request_id": "r1",
        "user": "alice",
    }
    assert events[2]["source"] == "JOB" and events[3]["level"] == "error"
    assert feed.since(position) == ([], 0, 4)


def test_a_slow_feed_reader_counts_the_lines_it_missed() -> None:
    log, _ = make_log()
    feed = Feed(size=3)
    log.attach(feed)
    for number in range(5):
        log.access("GET", f"/{number}", 200, 1.0, f"r{number}")
    events, dropped, position = feed.since(0)
    assert [e["path"] for e in events if e["kind"] == "request"] == ["/2", "/3", "/4"]
    assert dropped == 2 and position == 5
    log.access("GET", "/5", 200, 1.0, "r5")
    events, dropped, position = feed.since(position)
    assert [e["path"] for e in events if e["kind"] == "request"] == ["/5"]
    assert dropped == 0 and position == 6
