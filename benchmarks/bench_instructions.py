"""Instructions per request: ``qr dev``'s app against bare Starlette, counted, not timed.

Requests/s on a shared 2-core machine swing by 2-4x between rounds (see docs/dev.md, "Speed");
an instruction count does not. Under valgrind's ``callgrind`` (``apt-get install valgrind``) this
serves the three shapes of ``bench_dev`` in-process, on one uvloop loop, to

* ``qr dev``'s whole ASGI app (``DevServer.app``: the dev app, the project's HTTP app, the console
  line written to a file and the dashboard feed), built from the same project ``bench_dev`` uses;
* bare Starlette serving the same shapes (``bench_dev.BARE_APP`` without uvicorn);

and prints the instructions per request of each and their ratio (bare / qr, as ``bench_dev``
prints requests/s: ``>= 0.85x`` is the goal there). Each figure is the difference between a run
of ``REQUESTS`` requests and a run of none, so start-up is not counted. Sync handlers hop to a
worker thread on both sides; valgrind runs one thread at a time, so the hop counts its
instructions, not the waiting it causes under load. uvicorn's HTTP parsing and socket writes
are not in either figure (they are the same for both servers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_dev import BARE_APP, SHAPES, TOKEN, make_project

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))

SERVE = """
import asyncio, os, sys
import uvloop

side, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if side == "qr":
    from pathlib import Path
    from qr.cli.console import Output
    from qr.cli.dev.server import DevOptions, DevServer

    root = Path.cwd()
    server = DevServer(DevOptions(root, port=8000), Output(open(os.devnull, "w"), rich=False))
    server.log._flusher = object()  # no flusher thread: flushed below, so its work is counted
    app, flush = server.app, server.log.flush
else:
    exec(open(sys.argv[4]).read().split("uvicorn.run(")[0])
    flush = lambda: None

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"),
           (b"authorization", b"Bearer TOKEN")]

def scope():
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": "GET", "root_path": "", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": HEADERS, "state": {}}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    pass

async def serve(n):
    for i in range(n):
        await app(scope(), receive, send)
        if i % 800 == 799:  # the console's batch: about 50 ms of requests under load
            flush()
    flush()

async def main():
    await serve(300)  # warm: imports, caches, the first worker thread
    await serve(count)

uvloop.run(main())
""".replace("TOKEN", TOKEN)


def instructions(script: Path, side: str, path: str, count: int, cwd: Path, bare: Path) -> int:
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            side,
            path,
            str(count),
            str(bare),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind gave no count:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): no instruction counts")
        return
    with tempfile.TemporaryDirectory(prefix="qr-bench-instr-") as scratch:
        base = Path(scratch)
        project = base / "bench"
        make_project(project)
        script, bare = base / "serve.py", base / "bare.py"
        script.write_text(SERVE)
        bare.write_text(BARE_APP)
        print(f"instructions per request (callgrind, {REQUESTS} requests, in-process)")
        print(f"{'shape':<40} {'qr dev':>10} {'bare':>10}  bare/qr")
        for name, path, _ in SHAPES:
            counts = {}
            for side in ("qr", "bare"):
                full = instructions(script, side, path, REQUESTS, project, bare)
                empty = instructions(script, side, path, 0, project, bare)
                counts[side] = (full - empty) / REQUESTS
            ratio = counts["bare"] / counts["qr"]
            print(f"{name:<40} {counts['qr']:10.0f} {counts['bare']:10.0f}  {ratio:.2f}x")


if __name__ == "__main__":
    main()
