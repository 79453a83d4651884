"""``qr dev`` over the network, against baselines measured in the same run.

Goals (issue 5):
* a JSON GET route through ``qr dev`` serves >= 0.7x the requests/s of a bare uvicorn + Starlette
  app returning the same JSON with the same uvicorn settings (httptools/uvloop as installed, no
  access log, log level warning); ``async def`` handlers for the goal, and ``def`` ones (both run
  in a thread pool) reported beside it;
* >= 30x the requests/s of ``chalice local`` serving an equivalent route (chalice is installed in
  a throw-away venv under ``.qr-ci/chalice-venv`` on first use; skipped with a note when PyPI is
  unreachable);
* save -> new code served: p50 <= 300 ms (write the handler, poll until the new value comes back);
* WebSocket server -> client messages/s (``socket.send`` from a handler, one connection).

Load is ``wrk -t1 -c16`` (Debian's ``wrk``) for a fixed duration when it is on PATH, else an
httpx loop with 16 concurrent clients; the same tool for every server. Everything listens on
127.0.0.1 only; every loop is bounded in count and time. ``qr dev``'s console goes to a file,
as it would to a terminal (one line per request).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import websockets

PAYLOAD = {"id": "42", "name": "Item 42", "tags": ["a", "b"], "price": 9.5}
DURATION = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = 3
CONNECTIONS = 16
REPO = Path(__file__).resolve().parent.parent
CHALICE_VENV = REPO / ".qr-ci" / "chalice-venv"

BARE_APP = f"""
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def item(request):
    return JSONResponse({PAYLOAD!r})

def sync_item(request):
    return JSONResponse({PAYLOAD!r})

app = Starlette(routes=[Route("/item", item), Route("/sync_item", sync_item)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning",
            ws_max_size=128 * 1024, timeout_graceful_shutdown=5)
"""

CHALICE_APP = f"""
from chalice import Chalice

app = Chalice(app_name="bench")

@app.route("/item")
def item():
    return {PAYLOAD!r}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@contextmanager
def serve(command: list[str], url: str, cwd: Path, log: Path) -> Iterator[None]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def load(url: str) -> float:
    """Requests per second against ``url``."""
    if shutil.which("wrk"):
        result = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION:g}s", url],
            capture_output=True,
            text=True,
            timeout=DURATION + 60,
            check=True,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        if not match or "Non-2xx" in result.stdout:
            raise RuntimeError(f"wrk failed:\n{result.stdout}{result.stderr}")
        return float(match.group(1))
    return asyncio.run(_httpx_load(url))


async def _httpx_load(url: str) -> float:
    count = 0
    deadline = time.monotonic() + DURATION

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            response = await client.get(url)
            response.raise_for_status()
            count += 1

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        start = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
        return count / (time.monotonic() - start)


def make_project(root: Path) -> None:
    (root / "api").mkdir(parents=True)
    (root / "socket").mkdir()
    (root / "qr.yaml").write_text("name: bench\n")
    (root / "api" / "item.py").write_text(f"async def get():\n    return {PAYLOAD!r}\n")
    (root / "api" / "sync_item.py").write_text(f"def get():\n    return {PAYLOAD!r}\n")
    (root / "api" / "version.py").write_text('def get():\n    return {"version": 0}\n')
    (root / "socket" / "index.py").write_text(
        "from qr.runtime import socket\n\n"
        "async def handler(data):\n"
        "    for i in range(int(data['count'])):\n"
        "        socket.send({'n': i})\n"
        "    return {'done': data['count']}\n"
    )


def reload_latency(base: str, root: Path, rounds: int = 15) -> list[float]:
    """Seconds from writing a handler to the new value being served, per round."""
    latencies: list[float] = []
    target = root / "api" / "version.py"
    with httpx.Client(timeout=5) as client:
        for version in range(1, rounds + 1):
            time.sleep(0.3)  # let the watcher settle between rounds
            started = time.perf_counter()
            target.write_text(f'def get():\n    return {{"version": {version}}}\n')
            deadline = started + 10
            while time.perf_counter() < deadline:
                if client.get(base + "/version").json().get("version") == version:
                    break
                time.sleep(0.005)
            else:
                raise RuntimeError(f"version {version} was not served within 10 s")
            latencies.append(time.perf_counter() - started)
    return latencies


async def socket_rate(ws_url: str, count: int = 20_000) -> float:
    """Messages per second the server sends to one client."""
    async with websockets.connect(ws_url, max_queue=None) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"count": count}))
        received = 0
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if "done" in message:
                break
            received += 1
        elapsed = time.perf_counter() - started
    if received != count:
        raise RuntimeError(f"received {received} of {count} messages")
    return count / elapsed


def chalice_python() -> Path | None:
    python = CHALICE_VENV / "bin" / "python"
    if not (CHALICE_VENV / "bin" / "chalice").exists():
        try:
            subprocess.run(
                [sys.executable, "-m", "venv", str(CHALICE_VENV)], check=True, timeout=120
            )
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "chalice"],
                check=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"chalice: could not install it ({exc}); skipping that baseline")
            return None
    return CHALICE_VENV / "bin" / "chalice"


def main() -> None:
    tool = "wrk -t1 -c16" if shutil.which("wrk") else "httpx, 16 concurrent clients"
    print(f"load: {tool}, best of {ROUNDS} alternating {DURATION:g} s runs, 127.0.0.1 only")
    with tempfile.TemporaryDirectory(prefix="qr-bench-dev-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        project = base / "bench"
        make_project(project)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        qr_command = [sys.executable, "-m", "qr.cli", "dev", "--port", str(port)]
        stack.enter_context(serve(qr_command, url + "/item", project, base / "qr-dev.log"))
        bare_file = base / "bare.py"
        bare_file.write_text(BARE_APP)
        bare_port = free_port()
        bare_url = f"http://127.0.0.1:{bare_port}/item"
        command = [sys.executable, str(bare_file), str(bare_port)]
        stack.enter_context(serve(command, bare_url, base, base / "bare.log"))
        # Alternate the two so a noisy neighbour hits both alike; keep each one's best round.
        qr_rps = bare_rps = qr_sync_rps = bare_sync_rps = 0.0
        bare_sync_url = bare_url.replace("/item", "/sync_item")
        for _ in range(ROUNDS):
            qr_rps = max(qr_rps, load(url + "/item"))
            bare_rps = max(bare_rps, load(bare_url))
        for _ in range(ROUNDS):
            qr_sync_rps = max(qr_sync_rps, load(url + "/sync_item"))
            bare_sync_rps = max(bare_sync_rps, load(bare_sync_url))
        ws_rate = asyncio.run(socket_rate(url.replace("http", "ws") + "/"))
        latencies = reload_latency(url, project)

        chalice_rps: float | None = None
        chalice = chalice_python()
        if chalice is not None:
            app_dir = base / "chalice-bench"
            (app_dir / ".chalice").mkdir(parents=True)
            (app_dir / "app.py").write_text(CHALICE_APP)
            (app_dir / ".chalice" / "config.json").write_text(
                json.dumps({"version": "2.0", "app_name": "bench", "stages": {"dev": {}}})
            )
            port = free_port()
            chalice_url = f"http://127.0.0.1:{port}/item"
            command = [str(chalice), "local", "--host", "127.0.0.1", "--port", str(port)]
            with serve(command, chalice_url, app_dir, base / "chalice.log"):
                chalice_rps = load(chalice_url)

    print(f"qr dev JSON GET:             {qr_rps:10.0f} req/s")
    print(
        f"bare uvicorn + Starlette:    {bare_rps:10.0f} req/s   ratio {qr_rps / bare_rps:.2f}x (goal >= 0.7x)"
    )
    print(
        f"sync def routes (thread pool): {qr_sync_rps:8.0f} vs {bare_sync_rps:.0f} req/s   "
        f"ratio {qr_sync_rps / bare_sync_rps:.2f}x"
    )
    if chalice_rps is not None:
        print(
            f"chalice local:               {chalice_rps:10.0f} req/s   "
            f"ratio {qr_rps / chalice_rps:.1f}x (goal >= 30x)"
        )
    p50 = statistics.median(latencies) * 1000
    worst = max(latencies) * 1000
    print(
        f"save -> new code served:     p50 {p50:.0f} ms, max {worst:.0f} ms over {len(latencies)} saves (goal p50 <= 300 ms)"
    )
    print(f"WebSocket server -> client:  {ws_rate:10.0f} messages/s (one connection)")


if __name__ == "__main__":
    main()
