"""``qr dev --docker`` against ``qr dev`` (in-process), both measured in this run.

Goals (issue 9):
* warm request latency: p50 of sequential ``GET /`` through ``qr dev --docker`` over p50 through
  ``qr dev`` on the same scaffolded project, both real servers on 127.0.0.1 (ratio; goal <= 3x);
* start-up: time from launching ``qr dev --docker`` to the first served request, with the image
  already built (the first launch below builds it if needed and is reported separately).

Needs a running engine and the local base image (``scripts/docker-up``); the containers use host
networking like the tests. Every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
WARMUP = 20
EXTRA = os.environ.get("BENCH_DOCKER_FLAGS", "").split()
BASE_IMAGE = os.environ.get("QR_TEST_BASE_IMAGE", "qr-test/python:3.11")


def _scaffold(base: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "qr.cli", "init", str(base / "app"), "--yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    root = base / "app"
    config = root / "qr.yaml"
    config.write_text(config.read_text().replace("runtime: python3.12", "runtime: python3.11"))
    return root


@contextmanager
def _serve(root: Path, *flags: str) -> Iterator[tuple[str, float]]:
    """Start ``qr dev``; yields its URL and the seconds until the first 200 from ``GET /``."""
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "QR_DOCKER_BASE_IMAGE": BASE_IMAGE,
        "QR_DOCKER_NETWORK": "host",
    }
    state = root / ".qr" / "dev" / "server.json"
    state.unlink(missing_ok=True)
    log = root.parent / "dev.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "qr.cli", "dev", "--port", "0", "--no-reload", *flags],
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = started + 600
        url = ""
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"qr dev {' '.join(flags)} exited:\n{log.read_text()}")
            if not url and state.exists():
                url = json.loads(state.read_text())["url"]
            if url:
                try:
                    if httpx.get(url + "/", timeout=30).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        else:
            raise SystemExit(f"qr dev {' '.join(flags)} did not serve within 600 s")
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=60)


def _p50(url: str) -> float:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(WARMUP):
            client.get("/")
        samples = []
        for _ in range(REQUESTS):
            begin = time.perf_counter()
            response = client.get("/")
            samples.append(time.perf_counter() - begin)
            assert response.status_code == 200, response.text
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = _scaffold(Path(scratch))
        with _serve(root) as (url, _):
            local = _p50(url)
        with _serve(root, "--docker", *EXTRA) as (url, first_start):
            docker = _p50(url)
        with _serve(root, "--docker") as (url, cached_start):
            pass
    print(f"warm GET / p50: qr dev {local * 1000:.2f} ms, qr dev --docker {docker * 1000:.2f} ms")
    print(f"  ratio --docker / in-process: {docker / local:.2f}x (goal <= 3x)")
    print(f"start to first request, --docker: {cached_start:.2f} s with the image cached")
    print(f"  (first launch in this run, building what was missing: {first_start:.2f} s)")


if __name__ == "__main__":
    main()
