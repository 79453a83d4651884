"""Typed payloads and flow control in a real ``qr dev`` process (one server, module scope).

Handlers append a line per run to ``runs.log`` in the project; the tests push over HTTP, with
``qr dev queue`` or straight into the engine's database, and wait (bounded) for the lines.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.ports import OutgoingJob
from tests.integration.test_dev_server import DevProcess, running_dev
from tests.waiting import until

pytestmark = pytest.mark.integration

T = TypeVar("T")
WAIT = 30.0

FILES = {
    "qr.yaml": "name: flow\n",
    "lib/__init__.py": "",
    "lib/runs.py": """
        import os, time

        def record(line):
            with open(os.path.join(os.environ["FLOW_DIR"], "runs.log"), "a") as f:
                f.write(f"{time.time():.3f} {line}\\n")
    """,
    "queues/orders.py": """
        from pydantic import BaseModel
        from lib.runs import record

        class Order(BaseModel):
            id: int
            sku: str

        def handler(payload: Order):
            record(f"orders {type(payload).__name__} {payload.id} {payload.sku}")
    """,
    "queues/throttled.py": """
        from lib.runs import record

        config = {"rate_limit": {"limit": 2, "per": 1}}

        def handler(payload, job):
            record(f"throttled {payload} attempt={job.received_count}")
    """,
    "queues/reindex.py": """
        from lib.runs import record

        def handler(payload, job):
            record(f"reindex {payload['doc']} v{payload['v']} attempt={job.received_count}")
    """,
    "api/reindex.py": """
        from qr.runtime import queues

        def post(body):
            return {"job_id": queues["reindex"].debounce(body["doc"], seconds=1).push(body)}
    """,
    "queues/step1.py": """
        from qr.runtime import queues
        from lib.runs import record

        def handler(payload):
            record(f"step1 {payload}")
            return queues["step2"].after(payload + 1)
    """,
    "queues/step2.py": """
        from lib.runs import record

        def handler(payload):
            record(f"step2 {payload}")
    """,
    "api/orders.py": """
        from qr.runtime import queues
        post = queues["orders"].http
    """,
}


def _until(check: Callable[[], T | None], what: str) -> T:
    return until(check, what, WAIT)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("flow")
    root = base / "app"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dedent(text), encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1", "FLOW_DIR": str(root)}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    with running_dev(root, base / "dev.log", ["--port", "0", "--no-reload"], env) as server:
        yield server


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).lstrip("\n")


def _runs(dev: DevProcess, prefix: str) -> list[str]:
    path = dev.root / "runs.log"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[1].startswith(prefix)]


def _stats(dev: DevProcess, queue: str) -> dict[str, int]:
    done = dev.qr("queues", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = data["queues"] if isinstance(data, dict) else data
    return next(row for row in rows if row["queue"] == queue)


def test_typed_payloads_validate_at_push_and_dead_letter_at_consume(dev: DevProcess) -> None:
    response = httpx.post(dev.url + "/orders", json={"id": "7", "sku": "a"}, timeout=WAIT)
    assert response.status_code == 202  # "7" validates as an int (pydantic's lax mode)
    _until(lambda: _runs(dev, "orders ") == ["orders Order 7 a"], "the typed job to run")

    response = httpx.post(dev.url + "/orders", json={"id": "seven"}, timeout=WAIT)
    assert response.status_code == 400
    assert "takes Order payloads" in response.json()["error"]
    # qr dev queue does not load handlers, so it pushes around validation: the running worker
    # moves the job to the dead-letter queue when it receives it, once, without running it
    pushed = dev.qr("dev", "queue", "orders", '{"id": 1}')
    assert pushed.returncode == 0, pushed.stderr
    _until(lambda: _stats(dev, "orders")["dead"] == 1, "the invalid job in the DLQ")
    engine = Engine(dev.root / DB_PATH)
    try:
        (dead,) = engine.dead_jobs("orders")
    finally:
        engine.close()
    assert dead.received_count == 1
    assert "does not validate as Order" in (dead.last_error or "")
    assert "sku" in (dead.last_error or "")
    assert _runs(dev, "orders ") == ["orders Order 7 a"]


def test_rate_limited_jobs_are_spread_out_and_run_once(dev: DevProcess) -> None:
    engine = Engine(dev.root / DB_PATH)
    try:
        for n in range(6):
            engine.push(OutgoingJob("throttled", str(n), "application/json"))
    finally:
        engine.close()
    runs = _until(
        lambda: _runs(dev, "throttled ") if len(_runs(dev, "throttled ")) == 6 else None, "6 runs"
    )
    assert sorted(runs) == [f"throttled {n} attempt=1" for n in range(6)]  # none failed or retried
    times = [
        float(line.split(" ", 1)[0])
        for line in (dev.root / "runs.log").read_text().splitlines()
        if " throttled " in line
    ]
    # 2 at once, then 2 a second: the 6th token exists 2 s after the first run (a lower bound,
    # which a slow machine only makes larger)
    assert max(times) - min(times) >= 1.9
    assert _stats(dev, "throttled")["dead"] == 0


def test_debounced_pushes_run_the_last_payload_once(dev: DevProcess) -> None:
    for v in range(4):
        response = httpx.post(dev.url + "/reindex", json={"doc": "d1", "v": v}, timeout=WAIT)
        assert response.status_code == 200
    httpx.post(dev.url + "/reindex", json={"doc": "d2", "v": 0}, timeout=WAIT)

    def settled() -> bool:
        row = _stats(dev, "reindex")
        return row["depth"] + row["in_flight"] + row["delayed"] == 0

    _until(lambda: len(_runs(dev, "reindex ")) >= 2 and settled(), "the debounced jobs to run")
    assert sorted(_runs(dev, "reindex ")) == ["reindex d1 v3 attempt=1", "reindex d2 v0 attempt=1"]


def test_a_chain_runs_its_next_step_after_the_first(dev: DevProcess) -> None:
    done = dev.qr("dev", "queue", "step1", "1")
    assert done.returncode == 0, done.stderr
    _until(lambda: _runs(dev, "step2 ") == ["step2 2"], "the chained step")
    assert _runs(dev, "step1 ") == ["step1 1"]
