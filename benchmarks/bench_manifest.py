"""Scan + validate a generated project: 500 routes, 100 queues, 50 schedules, 20 socket actions.

Goal (issue 2): the full project in <= 1 s here, growing linearly. Prints the time per 100 handlers
at full size and at a fifth of it; the ratio between them shows linearity (1.0 = linear).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from qr.runtime.manifest import scan


def generate(root: Path, routes: int, queues: int, schedules: int, actions: int) -> int:
    (root / "qr.yaml").write_text("name: bench\n")
    (root / "api").mkdir(parents=True)
    (root / "api" / "_middleware.py").write_text(
        "def authenticate(bearer_token):\n    return None\n"
    )
    for i in range(routes):
        folder = root / "api" / f"area{i % 25}" / f"thing{i}"
        folder.mkdir(parents=True)
        (folder / "[id].py").write_text(
            "config = {'timeout': 5, 'cache': 60}\n\ndef get(id, user):\n    return {'id': id}\n\n"
            "def put(id, body):\n    return body\n"
        )
    (root / "queues").mkdir()
    for i in range(queues):
        suffix = ".fifo" if i % 2 else ""
        (root / "queues" / f"q{i}{suffix}.py").write_text(
            "config = {'timeout': 60, 'max_attempts': 5}\n\ndef handler(payload, job):\n    return None\n"
        )
    (root / "schedules").mkdir()
    for i in range(schedules):
        (root / "schedules" / f"s{i}.py").write_text(
            f"schedule = '{i % 60} 9 * * 1-5'\n\ndef handler(job):\n    return None\n"
        )
    (root / "socket").mkdir()
    (root / "socket" / "index.py").write_text("def handler(data):\n    return None\n")
    for i in range(actions):
        (root / "socket" / f"a{i}.py").write_text("def handler(data, user):\n    return None\n")
    return routes + queues + schedules + actions + 1


def measure(scale: float) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        count = generate(root, int(500 * scale), int(100 * scale), int(50 * scale), int(20 * scale))
        best = float("inf")
        for _ in range(3):
            for name in [m for m in sys.modules if m.startswith("qr_app:")]:
                del sys.modules[name]
            start = time.perf_counter()
            scan(root)
            best = min(best, time.perf_counter() - start)
        return count, best


def main() -> None:
    small_count, small = measure(0.2)
    full_count, full = measure(1.0)
    per100_small = small / small_count * 100
    per100_full = full / full_count * 100
    print(
        f"small project: {small_count} handlers in {small * 1000:.0f} ms ({per100_small * 1000:.1f} ms / 100 handlers)"
    )
    print(
        f"full project:  {full_count} handlers in {full * 1000:.0f} ms ({per100_full * 1000:.1f} ms / 100 handlers)"
    )
    print(
        f"linearity (per-100 cost full / small): {per100_full / per100_small:.2f}x  (1.00 = linear)"
    )
    print(f"goal: full project <= 1000 ms -> {'met' if full <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
