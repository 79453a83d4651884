"""The ``qr dev`` dashboard's cost, against baselines measured in the same run.

Goals (issue 18):
* HTTP throughput of ``qr dev`` (``wrk -t1 -c16`` on a JSON route) with a dashboard page open and
  streaming (a client reading ``/_qr/events`` the whole time) >= 0.95x the same server with no
  dashboard client; rounds alternate between the two so drift in the machine's load hits both;
* the Jobs page's first screen with 10,000 jobs in the queue database <= 300 ms, measured at the
  server: the time from sending ``GET /_qr/jobs`` to the whole page received (loopback, median of
  rounds).

Every server listens on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import httpx

from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.ports import OutgoingJob


def _bench_dev() -> ModuleType:
    """``bench_dev.py`` beside this file: the same server start and load loop."""
    spec = importlib.util.spec_from_file_location(
        "bench_dev", Path(__file__).with_name("bench_dev.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_dev = _bench_dev()
PAYLOAD = bench_dev.PAYLOAD

ROUNDS = 6
JOBS = 10_000
PAGE_ROUNDS = 15


def make_project(root: Path) -> None:
    (root / "api").mkdir(parents=True)
    (root / "queues").mkdir()
    (root / "qr.yaml").write_text("name: bench\n")
    (root / "api" / "item.py").write_text(f"async def get():\n    return {PAYLOAD!r}\n")
    (root / "queues" / "work.py").write_text(
        "from qr.runtime import queues\n\ndef handler(payload):\n    return None\n\n"
        "queue = queues.self()\n"
    )


def fill(root: Path) -> None:
    """10,000 delayed jobs (they stay in the list while the benchmark runs)."""
    engine = Engine(root / DB_PATH)
    try:
        for n in range(JOBS):
            engine.push(OutgoingJob("work", f'{{"n": {n}}}', "application/json", delay=900))
    finally:
        engine.close()


class Reader(threading.Thread):
    """A dashboard page: reads the event stream until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.frames = 0

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.frames += 1
                if self.stop.is_set():
                    return


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "bench"
        make_project(root)
        fill(root)
        port = bench_dev.free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "qr.cli", "dev", "--port", str(port), "--no-reload"]
        with bench_dev.serve(command, base + "/item", root, Path(temp) / "dev.log"):
            alone: list[float] = []
            watched: list[float] = []
            frames = 0
            for _ in range(ROUNDS):
                alone.append(bench_dev.load(base + "/item"))
                reader = Reader(base + "/_qr/events")
                reader.start()
                try:
                    watched.append(bench_dev.load(base + "/item"))
                finally:
                    reader.stop.set()
                    reader.join(timeout=10)
                frames += reader.frames
            ratio = statistics.median(watched) / statistics.median(alone)
            print(
                f"qr dev HTTP req/s, no dashboard client: median {statistics.median(alone):,.0f} "
                f"({', '.join(f'{v:,.0f}' for v in alone)})"
            )
            print(
                f"qr dev HTTP req/s, dashboard streaming: median {statistics.median(watched):,.0f} "
                f"({', '.join(f'{v:,.0f}' for v in watched)}); {frames} frames received"
            )
            print(f"ratio streaming / none: {ratio:.3f} (goal >= 0.95)")

            times: list[float] = []
            with httpx.Client(timeout=30) as client:
                client.get(base + "/_qr/jobs").raise_for_status()  # warm the templates
                for _ in range(PAGE_ROUNDS):
                    started = time.perf_counter()
                    page = client.get(base + "/_qr/jobs")
                    page.raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                assert page.text.count("data-job-id=") == 50, "the first screen shows 50 jobs"
            print(
                f"jobs page, first screen with {JOBS:,} jobs: median {statistics.median(times):.1f} ms, "
                f"max {max(times):.1f} ms over {PAGE_ROUNDS} requests (goal <= 300 ms)"
            )


if __name__ == "__main__":
    main()
