"""Terraform model + checks + render for a generated project: 500 routes, 100 queues, 50 schedules.

Goal (issue 7): <= 1 s for the full project, growing linearly. The project is scanned once
(not timed: that is bench_manifest's job); each measurement builds the model, checks it and
renders every file to text, best of 5. Prints the time at full size and at a fifth of it, the
time per 100 handlers at both, and their ratio (1.0 = linear). Also prints the rendered size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from qr.cli.terraform import render, terraform_model
from qr.runtime.manifest import Manifest, scan

ROUTE = "def get(id):\n    return {'id': id}\n\ndef put(id, body):\n    return body\n"
QUEUE = (
    "config = {'timeout': 60, 'max_attempts': 5}\n\ndef handler(payload, job):\n    return None\n"
)


def generate(root: Path, routes: int, queues: int, schedules: int) -> int:
    (root / "qr.yaml").write_text(
        "name: bench\nstages:\n  production:\n    domain: api.example.com\n    zone: Z0123456789\n"
    )
    for i in range(routes):
        folder = root / "api" / f"area{i % 25}" / f"thing{i}"
        folder.mkdir(parents=True)
        (folder / "[id].py").write_text(ROUTE)
    (root / "queues").mkdir()
    for i in range(queues):
        suffix = ".fifo" if i % 2 else ""
        (root / "queues" / f"q{i}{suffix}.py").write_text(QUEUE)
    (root / "schedules").mkdir()
    for i in range(schedules):
        (root / "schedules" / f"s{i}.py").write_text(
            f"schedule = '{i % 60} 9 * * 1-5'\n\ndef handler(job):\n    return None\n"
        )
    (root / "socket").mkdir()
    (root / "socket" / "index.py").write_text("def handler(data):\n    return None\n")
    return routes + queues + schedules + 1


def timed(manifest: Manifest) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(5):
        start = time.perf_counter()
        files = render(terraform_model(manifest))
        best = min(best, time.perf_counter() - start)
        size = sum(len(text) for text in files.values())
    return best, size


def measure(scale: float) -> tuple[int, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        count = generate(root, int(500 * scale), int(100 * scale), int(50 * scale))
        manifest = scan(root)
        seconds, size = timed(manifest)
        return count, seconds, size


def main() -> None:
    small_count, small, _ = measure(0.2)
    full_count, full, size = measure(1.0)
    per_small = small / small_count * 100
    per_full = full / full_count * 100
    print(f"full project ({full_count} handlers): {full * 1000:.0f} ms, {size / 1e6:.2f} MB of HCL")
    print(f"fifth ({small_count} handlers): {small * 1000:.0f} ms")
    print(f"per 100 handlers: {per_full * 1000:.1f} ms (full) vs {per_small * 1000:.1f} ms (fifth)")
    print(f"linearity ratio (full / fifth, per handler): {per_full / per_small:.2f}")
    print(f"goal <= 1000 ms for the full project: {'met' if full <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
