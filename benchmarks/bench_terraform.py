"""Terraform model + checks + render for a generated project: 500 routes, 100 queues, 50 schedules.

Goal (issue 7): <= 1 s for the full project, growing linearly. Each project is scanned once
(not timed: that is bench_manifest's job); a measurement builds the model, checks it and renders
every file to text. The full project and a fifth of it are measured in alternating rounds (best
of each), so load on the machine hits both alike. Prints both times, the time per 100 handlers
at each size and their ratio (1.0 = linear), and the size of the rendered HCL.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from qr.cli.terraform import render, terraform_model
from qr.runtime.manifest import Manifest, scan

ROUNDS = 15
ROUTE = "def get(id):\n    return {'id': id}\n\ndef put(id, body):\n    return body\n"
QUEUE = (
    "config = {'timeout': 60, 'max_attempts': 5}\n\ndef handler(payload, job):\n    return None\n"
)


def generate(root: Path, routes: int, queues: int, schedules: int) -> int:
    """A project on a custom domain with a WebSocket API, so every template renders."""
    (root / "qr.yaml").write_text(
        "name: bench\nstages:\n  production:\n    domain: api.example.com\n    zone: Z0123456789\n"
    )
    for i in range(routes):
        folder = root / "api" / f"area{i % 25}" / f"thing{i}"
        folder.mkdir(parents=True)
        (folder / "[id].py").write_text(ROUTE)
    (root / "queues").mkdir()
    for i in range(queues):
        (root / "queues" / f"q{i}{'.fifo' if i % 2 else ''}.py").write_text(QUEUE)
    (root / "schedules").mkdir()
    for i in range(schedules):
        (root / "schedules" / f"s{i}.py").write_text(
            f"schedule = '{i % 60} 9 * * 1-5'\n\ndef handler(job):\n    return None\n"
        )
    (root / "socket").mkdir()
    (root / "socket" / "index.py").write_text("def handler(data):\n    return None\n")
    return routes + queues + schedules + 1


def once(manifest: Manifest) -> tuple[float, int]:
    start = time.perf_counter()
    files = render(terraform_model(manifest))
    return time.perf_counter() - start, sum(len(text) for text in files.values())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"fifth": 0.2, "full": 1.0}
        manifests: dict[str, Manifest] = {}
        counts: dict[str, int] = {}
        for name, scale in sizes.items():
            root = Path(tmp) / name
            root.mkdir()
            counts[name] = generate(root, int(500 * scale), int(100 * scale), int(50 * scale))
            manifests[name] = scan(root)
        # The scanned projects and everything imported stay alive for the whole run: keep the
        # collector from re-walking them, so a round measures the Terraform step alone.
        gc.collect()
        gc.freeze()
        best = dict.fromkeys(sizes, float("inf"))
        hcl = 0
        for _ in range(ROUNDS):
            for name in sizes:
                seconds, size = once(manifests[name])
                best[name] = min(best[name], seconds)
                hcl = size if name == "full" else hcl
    per = {name: best[name] / counts[name] * 100 for name in sizes}
    print(
        f"full project ({counts['full']} handlers): {best['full'] * 1000:.1f} ms, {hcl / 1e6:.2f} MB of HCL"
    )
    print(f"fifth ({counts['fifth']} handlers): {best['fifth'] * 1000:.1f} ms")
    print(
        f"per 100 handlers: {per['full'] * 1000:.2f} ms (full) vs {per['fifth'] * 1000:.2f} ms (fifth)"
    )
    print(f"linearity ratio (full / fifth, per handler): {per['full'] / per['fifth']:.2f}")
    print(f"goal <= 1000 ms for the full project: {'met' if best['full'] <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
