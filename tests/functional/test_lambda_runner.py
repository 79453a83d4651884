"""The Lambda entry point's event runner (one loop and task group for the container's life) and
its access line switch (``QR_ACCESS_LOG=off``, set by ``qr dev --docker``)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest

from qr.runtime import ports
from qr.runtime.aws.entry import ACCESS_LOG_VARIABLE, EventRunner, LambdaRuntime
from tests.conftest import MakeProject

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("_seen", default="unset")


@pytest.fixture
def runner() -> Iterator[EventRunner]:
    loop = asyncio.new_event_loop()
    runner = EventRunner(loop)
    yield runner
    runner.close()
    loop.close()


async def _worker_thread() -> threading.Thread:
    return await anyio.to_thread.run_sync(threading.current_thread)


def test_sync_work_of_successive_events_reuses_one_worker_thread(runner: EventRunner) -> None:
    first = runner.run(_worker_thread())
    second = runner.run(_worker_thread())
    assert first is second
    assert first is not threading.current_thread()


def test_closing_stops_the_worker_threads(runner: EventRunner) -> None:
    worker = runner.run(_worker_thread())
    assert worker.is_alive()
    runner.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    # A closed runner starts a new task group for the next event.
    assert runner.run(asyncio.sleep(0, "again")) == "again"


def test_an_event_error_reaches_the_caller_and_later_events_still_run(
    runner: EventRunner,
) -> None:
    async def boom() -> None:
        raise ValueError("boom")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(ValueError, match="boom"):
        runner.run(boom())
    with pytest.raises(asyncio.CancelledError):
        runner.run(cancelled())
    assert runner.run(asyncio.sleep(0, 42)) == 42


def test_each_event_starts_from_a_fresh_context(runner: EventRunner) -> None:
    async def set_and_read() -> str:
        before = _seen.get()
        _seen.set("first event")
        return before

    assert runner.run(set_and_read()) == "unset"
    assert runner.run(set_and_read()) == "unset"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("setting", "lines"), [(None, 1), ("off", 0)])
def test_the_access_line_unless_switched_off(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture, setting: str | None, lines: int
) -> None:
    root = make_project(
        {"qr.yaml": "name: demo\n", "api/items/[id].py": "def get(id):\n    return {'id': id}\n"}
    )
    environ = {} if setting is None else {ACCESS_LOG_VARIABLE: setting}
    runtime = LambdaRuntime(root, environ)
    try:
        with caplog.at_level(logging.INFO, logger="qr.http"):
            answer = runtime.dispatch(json.loads((EVENTS / "http_get.json").read_text()))
    finally:
        runtime.close()
        ports.set_platform(None)  # the runtime installed its Lambda platform
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"id": "42"}
    assert len([r for r in caplog.records if r.name == "qr.http"]) == lines
