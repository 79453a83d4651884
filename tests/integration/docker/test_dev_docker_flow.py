"""Flow control under ``qr dev --docker``: rate limits, debounce and chains as under plain ``qr dev``.

The handlers run in a container with the production adapters (``SqsQueues`` with
``DynamoDebounce`` / ``DynamoSteps``, the batch's ``DynamoBuckets``) on the flow table
``QR_FLOW_TABLE``; their requests reach the local endpoint, which serves them from the dev
server's own flow state (``qr.cli.docker.flow_table``). Handlers print a line per run, which the
dev console shows; one server for the module (tests in file order), every wait bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.docker.test_dev_docker import docker_dev
from tests.integration.test_dev_jobs import write_files
from tests.integration.test_dev_server import DevProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

WAIT = 60.0

FILES = {
    "qr.yaml": "name: dflow\nruntime: python3.11\n",  # the local base image's Python
    "queues/throttled.py": (
        "import time\n"
        "config = {'rate_limit': {'limit': 1, 'per': 3}}\n"
        "def handler(payload, job):\n"
        "    print(f'throttled ran {payload} attempt={job.received_count} at={time.time():.3f}')\n"
    ),
    "api/throttle.py": (
        "from qr.runtime import queues\n"
        "def post(body):\n"
        "    return {'jobs': [queues['throttled'].push(n) for n in range(body['count'])]}\n"
    ),
    "queues/reindex.py": (
        "def handler(payload, job):\n"
        "    print(f\"reindex ran {payload['doc']} v{payload['v']} attempt={job.received_count}\")\n"
    ),
    "api/reindex.py": (
        "from qr.runtime import queues\n"
        "def post(body):\n"
        "    return {'job_id': queues['reindex'].debounce(body['doc'], seconds=1).push(body)}\n"
    ),
    # the first attempt dies right after its next step was sent (before the batch is answered):
    # the retry must find the step recorded and not push it again
    "queues/step1.py": (
        "import os\n"
        "from qr.runtime import queues\n"
        "from qr.runtime.aws import sqs\n"
        "config = {'backoff': {'strategy': 'fixed', 'initial': 1, 'jitter': False}}\n"
        "def handler(payload, job):\n"
        "    print(f'step1 ran {payload} attempt={job.received_count}')\n"
        "    if job.received_count == 1:\n"
        "        send = sqs.SqsQueues.send_steps\n"
        "        def send_then_die(self, job_id, steps):\n"
        "            ids = send(self, job_id, steps)\n"
        "            print(f'step1 sent its step {ids} and dies', flush=True)\n"
        "            os._exit(1)\n"
        "        sqs.SqsQueues.send_steps = send_then_die\n"
        "    return queues['step2'].after(payload + 1)\n"
    ),
    "queues/step2.py": ("def handler(payload, job):\n    print(f'step2 ran {payload}')\n"),
}


@pytest.fixture(scope="module")
def dev(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("docker-flow")
    write_files(base / "app", FILES)
    with docker_dev(
        docker_client,
        base / "app",
        base / "dev.log",
        # one container, warmed by the first test: the rate-limited runs' times are not skewed
        # by a second container's cold start
        {"QR_DOCKER_NETWORK": "host", "QR_DOCKER_CONCURRENCY": "1"},
    ) as server:
        yield server


def _lines(dev: DevProcess, marker: str) -> list[str]:
    """The console lines the containers printed with ``marker``, from it on."""
    return [line[line.index(marker) :] for line in dev.output().splitlines() if marker in line]


def _queue(dev: DevProcess, queue: str) -> dict[str, int]:
    done = dev.qr("queues", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = data["queues"] if isinstance(data, dict) else data
    row: dict[str, int] = next(row for row in rows if row["queue"] == queue)
    return row


def _settled(dev: DevProcess, queue: str) -> bool:
    row = _queue(dev, queue)
    return row["depth"] + row["in_flight"] + row["delayed"] == 0


def test_debounced_pushes_from_the_container_run_the_last_payload_once(dev: DevProcess) -> None:
    ids = []
    for v in range(4):
        response = httpx.post(f"{dev.url}/reindex", json={"doc": "d1", "v": v}, timeout=WAIT)
        assert response.status_code == 200, response.text
        ids.append(response.json()["job_id"])
    response = httpx.post(f"{dev.url}/reindex", json={"doc": "d2", "v": 0}, timeout=WAIT)
    assert response.status_code == 200, response.text
    dev.until(
        lambda: len(_lines(dev, "reindex ran ")) >= 2 and _settled(dev, "reindex"),
        "the debounced jobs to run",
        WAIT,
    )
    assert sorted(_lines(dev, "reindex ran ")) == [
        "reindex ran d1 v3 attempt=1",
        "reindex ran d2 v0 attempt=1",
    ]
    # the replaced pushes read as plain qr dev shows them: cancelled, replaced by a later push
    for job_id in ids[:3]:
        shown = dev.qr("jobs", "show", job_id, "--json")
        assert shown.returncode == 0, shown.stderr
        state = json.loads(shown.stdout)
        assert state["status"] == "cancelled", state
        assert state["error"]["type"] == "Debounced", state


def test_a_rate_limited_queue_fed_from_the_container(dev: DevProcess) -> None:
    pushed = httpx.post(f"{dev.url}/throttle", json={"count": 3}, timeout=WAIT)
    assert pushed.status_code == 200, pushed.text
    runs = dev.until(
        lambda: found if len(found := _lines(dev, "throttled ran ")) == 3 else None,
        "3 throttled runs",
        WAIT,
    )
    # none failed or was retried: a job over the limit waits without an attempt counted
    assert sorted(line.split(" at=")[0] for line in runs) == [
        f"throttled ran {n} attempt=1" for n in range(3)
    ]
    times = [float(line.split(" at=")[1]) for line in runs]
    # one job per 3 s: the third token exists 6 s after the first was taken. The runs print
    # after their invocation's latency (one warm container, so it is small; a container's cold
    # start took up to 1.5 s here under load), and the bound leaves 1.5 s of it; without the
    # limit they run at once
    assert max(times) - min(times) >= 4.5
    assert _queue(dev, "throttled")["dead"] == 0
    # the function's own bucket check was answered (not skipped with a warning, not refused)
    assert "QR_FLOW_TABLE is not set" not in dev.output()
    assert "rate limit of throttled not checked" not in dev.output()


def test_a_retried_job_does_not_push_its_next_step_twice(dev: DevProcess) -> None:
    pushed = dev.qr("dev", "queue", "step1", "1")
    assert pushed.returncode == 0, pushed.stderr
    dev.until(
        lambda: (
            "step1 ran 1 attempt=2" in _lines(dev, "step1 ran ")
            and _lines(dev, "step2 ran ")
            and _settled(dev, "step1")
            and _settled(dev, "step2")
        ),
        "step1's retry and step2",
        WAIT,
    )
    assert len(_lines(dev, "step1 sent its step ")) == 1
    assert _lines(dev, "step2 ran ") == ["step2 ran 2"]
