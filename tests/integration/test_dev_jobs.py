"""Following a job on a real qr dev: the status route, progress in the console, qr jobs."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.integration.test_dev_server import DevProcess, running_dev

pytestmark = pytest.mark.integration

FILES = {
    "qr.yaml": "name: follow\n",
    "api/_middleware.py": (
        "def authenticate(bearer_token):\n"
        "    return {'id': bearer_token} if bearer_token else None\n"
    ),
    "api/shots.py": "from qr.runtime import queues\npost = queues['shots'].http\n",
    "queues/shots.py": (
        "config = {'status_route': True}\n"
        "def handler(payload, job):\n"
        "    job.progress(0.5, 'half way')\n"
        "    return {'png': payload['url'] + '.png'}\n"
    ),
}


def write_files(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")


def check_following(dev: DevProcess) -> None:
    """A job of ``FILES``'s shots queue followed on ``dev``: the status route (with its
    authorisation), the progress line on the console, ``qr jobs show`` and ``qr jobs``. Shared
    with ``qr dev --docker`` (tests/integration/docker/test_dev_docker_jobs.py)."""
    auth = {"authorization": "Bearer u1"}
    pushed = httpx.post(f"{dev.url}/shots", json={"url": "https://a.example"}, headers=auth)
    assert pushed.status_code == 202
    job_id = pushed.headers["x-job-id"]
    location = pushed.headers["location"]
    assert location == f"/_jobs/{job_id}"

    def finished() -> dict[str, object] | None:
        state: dict[str, object] = httpx.get(f"{dev.url}{location}", headers=auth).json()
        return state if state["status"] == "succeeded" else None

    state = dev.until(finished, "the job to succeed")
    assert state["result"] == {"png": "https://a.example.png"}
    assert (state["progress"], state["progress_message"]) == (0.5, "half way")
    assert (state["user"], state["attempts"]) == ("u1", 1)
    assert httpx.get(f"{dev.url}{location}").status_code == 401
    assert httpx.get(f"{dev.url}/_jobs/nope", headers=auth).status_code == 404
    dev.until(
        lambda: f"shots job {job_id} progress 50% half way" in dev.output(),
        "the progress line on the console",
    )
    shown = dev.qr("jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "status    succeeded" in shown.stdout
    assert "progress  [##########..........] 50% half way" in shown.stdout
    assert "https://a.example.png" in shown.stdout
    listed = dev.qr("jobs", "shots", "--json")
    assert job_id in listed.stdout


def test_status_route_console_progress_and_qr_jobs(tmp_path: Path) -> None:
    root = tmp_path / "app"
    write_files(root, FILES)
    env = {**os.environ, "NO_COLOR": "1"}
    with running_dev(root, tmp_path / "dev.log", ["--port", "0"], env) as dev:
        check_following(dev)
