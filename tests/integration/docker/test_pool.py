"""The warm pool against real containers running awslambdaric and small handlers."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.cli.docker.image import BuiltImage
from qr.cli.docker.pool import (
    ContainerCrashed,
    ContainerPool,
    FunctionError,
    FunctionTimeout,
    LogLine,
    PoolConfig,
)
from tests.waiting import WAIT, until

pytestmark = pytest.mark.integration

APP = """
import os, sys, time, uuid

INSTANCE = uuid.uuid4().hex

print("init done", flush=True)

def handler(event, context):
    print("working on", event.get("n"), file=sys.stderr, flush=True)
    if event.get("raise"):
        raise ValueError("boom " + str(event["raise"]))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "instance": INSTANCE,
        "env": os.environ.get("GREETING"),
        "version": VERSION,
    }

VERSION = 1
"""


def _wait_for(logs: list[LogLine], text: str) -> LogLine:
    found = until(
        lambda: [line for line in logs if line.text == text],
        f"the output line {text!r}",
        output=lambda: "\n".join(line.text for line in logs),
    )
    return found[0]


def _write(task: Path, source: str) -> None:
    (task / "app.py").write_text(textwrap.dedent(source).lstrip())


@pytest.fixture
def task(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    _write(root, APP)
    return root


@pytest.fixture
def logs() -> list[LogLine]:
    return []


@pytest.fixture
def pool(
    docker_client: Any, function_image: BuiltImage, task: Path, logs: list[LogLine]
) -> Iterator[ContainerPool]:
    config = PoolConfig(
        function_image.tag,
        task,
        handler="app.handler",
        size=2,
        timeout=3,
        network="host",
        environment={"GREETING": "hello"},
    )
    with ContainerPool(docker_client, config, on_log=logs.append) as started:
        yield started


def test_warm_containers_answer_invocations(pool: ContainerPool, logs: list[LogLine]) -> None:
    assert pool.warm_count() == 2
    result = pool.invoke({"n": 1}, request_id="req-1")
    assert result["event"] == {"n": 1}
    assert result["request_id"] == "req-1"
    assert result["env"] == "hello"
    assert 0 < result["remaining_ms"] <= 3000
    # Output travels through the engine's log stream, which may trail the response a little.
    working = _wait_for(logs, "working on 1")
    assert (working.request_id, working.stream) == ("req-1", "stderr")
    init = _wait_for(logs, "init done")
    assert (init.request_id, init.stream) == (None, "stdout")


def test_pool_runs_invocations_in_parallel_containers(pool: ContainerPool) -> None:
    futures = [pool.submit({"n": n, "sleep": 0.5}) for n in range(2)]
    instances = {json.loads(f.result(timeout=WAIT))["instance"] for f in futures}
    assert len(instances) == 2


def test_handler_exception_is_a_function_error(pool: ContainerPool) -> None:
    with pytest.raises(FunctionError) as failure:
        pool.invoke({"raise": "x"}, request_id="req-err")
    assert failure.value.error_type == "ValueError"
    assert "boom x" in failure.value.message
    assert failure.value.request_id == "req-err"
    assert pool.invoke({"n": 2})["event"] == {"n": 2}


def test_timeout_is_enforced_and_the_container_replaced(pool: ContainerPool) -> None:
    with pytest.raises(FunctionTimeout) as failure:
        pool.invoke({"sleep": 30}, timeout=1)
    assert "timed out after 1 seconds" in failure.value.message
    assert pool.invoke({"n": 3})["event"] == {"n": 3}


def test_container_exit_mid_invocation_is_reported(pool: ContainerPool) -> None:
    with pytest.raises(ContainerCrashed) as failure:
        pool.invoke({"exit": True, "n": 4})
    assert "working on 4" in failure.value.output
    assert pool.invoke({"n": 5})["event"] == {"n": 5}


def test_code_change_reaches_warm_containers_on_restart(pool: ContainerPool, task: Path) -> None:
    assert pool.invoke({})["version"] == 1
    _write(task, APP.replace("VERSION = 1", "VERSION = 2"))
    pool.restart()
    assert pool.warm_count() == 2
    assert pool.invoke({})["version"] == 2


def test_init_crash_shows_output_and_the_pool_recovers(
    docker_client: Any, function_image: BuiltImage, task: Path
) -> None:
    _write(task, "print('loading app')\nraise RuntimeError('broken at import')\n")
    config = PoolConfig(
        function_image.tag, task, handler="app.handler", size=1, timeout=3, network="host"
    )
    with ContainerPool(docker_client, config) as broken:
        assert broken.warm_count() == 0
        with pytest.raises(ContainerCrashed) as failure:
            broken.invoke({})
        output = "\n".join(failure.value.output)
        assert "loading app" in output
        assert "broken at import" in output
        _write(task, APP)
        assert broken.invoke({"n": 6})["event"] == {"n": 6}


def _wait_idle(pool: ContainerPool, count: int) -> None:
    until(lambda: pool.idle_count() >= count, f"{count} idle containers", interval=0.01)


def test_sequential_invocations_reuse_the_most_recently_used_container(
    pool: ContainerPool,
) -> None:
    # Both containers idle before each call: the one that answered last takes the next (LIFO,
    # as Lambda reuses a warm environment), instead of the two alternating.
    instances = []
    for n in range(8):
        _wait_idle(pool, 2)
        instances.append(pool.invoke({"n": n})["instance"])
    assert len(set(instances[1:])) == 1, instances
    # The other one is still there for concurrent work.
    _wait_idle(pool, 2)
    futures = [pool.submit({"n": n, "sleep": 0.3}) for n in range(2)]
    assert len({json.loads(f.result())["instance"] for f in futures}) == 2


def test_a_pool_on_the_callers_loop_answers_without_blocking_it(
    docker_client: Any, function_image: BuiltImage, task: Path
) -> None:
    """As the dev server runs it: started from a worker thread while the loop serves the
    containers' first ``next``, invoked and closed from that loop."""
    config = PoolConfig(function_image.tag, task, handler="app.handler", size=1, network="host")

    async def run() -> list[Any]:
        loop = asyncio.get_running_loop()
        pool = ContainerPool(docker_client, config, loop=loop)
        await asyncio.to_thread(pool.start)
        try:
            assert pool.warm_count() == 1
            results = [await pool.ainvoke({"n": n}) for n in range(3)]
            with pytest.raises(FunctionError):
                await pool.ainvoke({"raise": "x"})
            return results
        finally:
            await asyncio.to_thread(pool.close)

    results = asyncio.run(run())
    assert [result["event"] for result in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
