"""Following a job under ``qr dev --docker``: the same job state as plain ``qr dev``.

The handlers run in a container with the production ``DynamoJobStore``; its requests reach the
local endpoint, which applies them to the dev server's SQLite job state. The status route runs
in the container too; ``qr jobs`` reads the dev server's database and ``qr jobs cancel`` acts
through the running server, as without ``--docker``. One server for the module, every wait
bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.docker.test_dev_docker import docker_dev
from tests.integration.test_dev_jobs import FILES, check_following, write_files
from tests.integration.test_dev_server import DevProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

WAIT = 60.0

DOCKER_FILES = {
    **FILES,
    "qr.yaml": "name: follow\nruntime: python3.11\n",  # the local base image's Python
    "queues/flaky.py": (
        "config = {'max_attempts': 2}\n"
        "def handler(payload, job):\n"
        "    raise ValueError(f\"bad input {payload['n']} on attempt {job.received_count}\")\n"
    ),
    "queues/big.py": (
        "config = {'max_attempts': 1}\ndef handler(payload, job):\n    return 'x' * 400_000\n"
    ),
    "queues/long.py": (
        "import time\n"
        "config = {'timeout': 120, 'max_attempts': 1}\n"
        "def handler(payload, job):\n"
        "    give_up = time.monotonic() + 60\n"
        "    while time.monotonic() < give_up:\n"
        "        job.progress(0.5, 'waiting to be cancelled')\n"
        "        if job.cancelled:\n"
        "            raise RuntimeError('stopped: cancelled')\n"
        "        time.sleep(0.1)\n"
        "    return 'never saw the cancel'\n"
    ),
    "queues/stretch.py": (
        "import time\n"
        "config = {'timeout': 120, 'max_attempts': 1}\n"
        "def handler(payload, job):\n"
        "    print(f'stretching {job.job_id}')\n"
        "    give_up = time.monotonic() + 60\n"
        "    while time.monotonic() < give_up:\n"
        "        job.extend(30)\n"
        "        if job.cancelled:\n"
        "            raise RuntimeError('stopped at extend')\n"
        "        time.sleep(0.1)\n"
        "    return 'never saw the cancel'\n"
    ),
    "queues/later.py": (
        "def handler(payload, job):\n    print(f'later ran {job.job_id}')\n    return payload\n"
    ),
    "api/later.py": (
        "from qr.runtime import queues\n"
        "def post(body):\n"
        "    return {'job_id': queues['later'].push(body, delay=body['delay'])}\n"
    ),
    "api/cancel/[job_id].py": (
        "from qr.runtime import jobs\n"
        "def post(job_id):\n"
        "    state = jobs.cancel(job_id)\n"
        "    return {'state': None if state is None else state.to_dict()}\n"
    ),
}


@pytest.fixture(scope="module")
def dev(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("docker-jobs")
    write_files(base / "app", DOCKER_FILES)
    with docker_dev(
        docker_client, base / "app", base / "dev.log", {"QR_DOCKER_NETWORK": "host"}
    ) as server:
        yield server


def _state(dev: DevProcess, job_id: str) -> dict[str, Any]:
    """``qr jobs show ID --json``: the dev server's job state, read from its database."""
    shown = dev.qr("jobs", "show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    state: dict[str, Any] = json.loads(shown.stdout)
    return state


def _push(dev: DevProcess, queue: str, payload: object) -> str:
    pushed = dev.qr("dev", "queue", queue, json.dumps(payload))
    assert pushed.returncode == 0, pushed.stderr
    return pushed.stdout.split("job ", 1)[1].split()[0]


def _when(dev: DevProcess, job_id: str, status: str) -> dict[str, Any]:
    return dev.until(
        lambda: (s := _state(dev, job_id))["status"] == status and s,
        f"job {job_id} to be {status}",
        WAIT,
    )


def test_progress_result_status_route_and_qr_jobs_as_without_docker(dev: DevProcess) -> None:
    check_following(dev)


def test_a_failing_job_keeps_its_error(dev: DevProcess) -> None:
    job_id = _push(dev, "flaky", {"n": 3})
    state = _when(dev, job_id, "dead")  # retried once after its backoff, then dead
    assert state["attempts"] == 2
    error = state["error"]
    assert (error["type"], error["message"]) == ("ValueError", "bad input 3 on attempt 2")
    assert 'raise ValueError(f"bad input' in error["traceback"]  # as under plain qr dev
    shown = dev.qr("jobs", "show", job_id)
    assert "ValueError: bad input 3 on attempt 2" in shown.stdout, shown.stdout


def test_a_result_over_the_item_limit_fails_as_on_aws(dev: DevProcess) -> None:
    job_id = _push(dev, "big", {})
    state = _when(dev, job_id, "dead")
    assert state["result"] is None
    assert state["error"]["type"] == "JobResultError"
    assert "queues/big.py:2" in state["error"]["message"]
    assert "393,216-byte result limit" in state["error"]["message"]


def test_a_queued_job_cancelled_in_the_container_never_runs(dev: DevProcess) -> None:
    pushed = httpx.post(f"{dev.url}/later", json={"delay": 600}, timeout=WAIT)
    assert pushed.status_code == 200, pushed.text
    job_id = pushed.json()["job_id"]
    assert _state(dev, job_id)["status"] == "delayed"
    cancelled = httpx.post(f"{dev.url}/cancel/{job_id}", timeout=WAIT)  # jobs.cancel in there
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"]["status"] == "cancelled"
    assert _state(dev, job_id)["status"] == "cancelled"
    promoted = dev.qr("jobs", "promote", job_id)  # nothing waits any more: it cannot be run now
    assert promoted.returncode != 0, promoted.stdout
    unknown = httpx.post(f"{dev.url}/cancel/nope", timeout=WAIT)
    assert unknown.json() == {"state": None}
    assert f"later ran {job_id}" not in dev.output()


def test_a_running_job_sees_a_cancel_from_the_host_at_its_next_progress(dev: DevProcess) -> None:
    job_id = _push(dev, "long", {})
    running = _when(dev, job_id, "running")
    dev.until(
        lambda: _state(dev, job_id)["progress_message"] == "waiting to be cancelled",
        "the running job's progress",
        WAIT,
    )
    assert running["attempts"] == 1
    cancelled = dev.qr("jobs", "cancel", job_id)  # through the running qr dev, as the dashboard
    assert cancelled.returncode == 0, cancelled.stderr
    state = _when(dev, job_id, "cancelled")
    assert state["error"]["message"] == "stopped: cancelled"
    assert state["attempts"] == 1  # not retried


def test_a_running_job_sees_a_cancel_from_the_host_at_its_next_extend(dev: DevProcess) -> None:
    job_id = _push(dev, "stretch", {})
    _when(dev, job_id, "running")
    dev.until(lambda: f"stretching {job_id}" in dev.output(), "the job to be extending", WAIT)
    cancelled = dev.qr("jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    state = _when(dev, job_id, "cancelled")
    assert state["error"]["message"] == "stopped at extend"
