"""``qr dev --docker`` against ``qr dev`` (in-process), both measured in this run.

Goals (issues 9 and 16):
* warm request latency: p50 of sequential ``GET /`` through ``qr dev --docker`` over p50 through
  ``qr dev`` on the same scaffolded project (two copies, one per server), both real servers on
  127.0.0.1 and both running at once; rounds alternate in-process / ``--docker`` and the figure
  is the median of the per-round ratios, with their spread (goal <= 2x; was 3x in issue 9);
* start-up: time from launching ``qr dev --docker`` to the first served request, with the image
  already built (the first launch below builds it if needed and is reported separately).

Also printed, to tell the parts apart: the p50 of a no-op handler's round trip through the pool
and one container's Runtime API (``ContainerPool.ainvoke``, the pool served on the caller's loop
as the dev server runs it, no qr entry point and no HTTP server in front), in the same function
image.

Needs a running engine and the local base image (``scripts/docker-up``); the containers use host
networking like the tests. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
WARMUP = 20
EXTRA = os.environ.get("BENCH_DOCKER_FLAGS", "").split()
BASE_IMAGE = os.environ.get("QR_TEST_BASE_IMAGE", "qr-test/python:3.11")


def _scaffold(base: Path, name: str = "app") -> Path:
    subprocess.run(
        [sys.executable, "-m", "qr.cli", "init", str(base / name), "--yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    root = base / name
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
    log = root.parent / f"{root.name}-dev.log"
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


def _p50(url: str, requests: int = REQUESTS) -> float:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(WARMUP):
            client.get("/")
        samples = []
        for _ in range(requests):
            begin = time.perf_counter()
            response = client.get("/")
            samples.append(time.perf_counter() - begin)
            assert response.status_code == 200, response.text
    return statistics.median(samples)


def _runtime_api_p50(base: Path) -> float:
    """A no-op handler's invocation through the pool: the Runtime API round trip alone."""
    from qr.cli.docker.engine import connect
    from qr.cli.docker.image import ImageBuilder, ImageSpec
    from qr.cli.docker.pool import ContainerPool, PoolConfig

    task = base / "noop"
    task.mkdir()
    (task / "noop.py").write_text("def handler(event, context):\n    return {}\n")
    client = connect()
    image = ImageBuilder(client).ensure(ImageSpec("3.11", BASE_IMAGE, requirements=("boto3",)))
    config = PoolConfig(image.tag, task, handler="noop.handler", size=1, network="host")

    async def measure(pool: ContainerPool) -> float:
        samples = []
        for n in range(WARMUP + REQUESTS):
            begin = time.perf_counter()
            await pool.ainvoke({"n": n})
            samples.append(time.perf_counter() - begin)
        return statistics.median(samples[WARMUP:])

    async def run() -> float:
        # served on this loop, as the dev server does
        pool = ContainerPool(client, config, loop=asyncio.get_running_loop())
        await asyncio.to_thread(pool.start)
        try:
            return await measure(pool)
        finally:
            await asyncio.to_thread(pool.close)

    try:
        return asyncio.run(run())
    finally:
        client.close()


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        local_root = _scaffold(Path(scratch), "local")
        root = _scaffold(Path(scratch))
        with _serve(local_root) as (local_url, _), _serve(root, "--docker", *EXTRA) as served:
            docker_url, first_start = served
            local_runs, docker_runs = [], []
            per_round = max(1, REQUESTS // ROUNDS)
            for _ in range(ROUNDS):
                local_runs.append(_p50(local_url, per_round))
                docker_runs.append(_p50(docker_url, per_round))
        with _serve(root, "--docker") as (_url, cached_start):
            pass
        noop = _runtime_api_p50(Path(scratch))
    ratios = [d / local for d, local in zip(docker_runs, local_runs, strict=True)]
    local, docker = statistics.median(local_runs), statistics.median(docker_runs)
    print(
        f"warm GET / p50 ({ROUNDS} alternating rounds of {per_round} requests): "
        f"qr dev {local * 1000:.2f} ms, qr dev --docker {docker * 1000:.2f} ms"
    )
    print(
        f"  ratio --docker / in-process: median {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}; goal <= 2x)"
    )
    print(f"  of which a no-op handler's round trip through the Runtime API: {noop * 1000:.2f} ms")
    print(f"start to first request, --docker: {cached_start:.2f} s with the image cached")
    print(f"  (first launch in this run, building what was missing: {first_start:.2f} s)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
