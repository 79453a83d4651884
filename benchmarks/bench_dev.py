"""``qr dev`` over the network, against baselines measured in the same run.

Goals (issues 5 and 16):
* a JSON GET route through ``qr dev`` serves >= 0.85x the requests/s of a bare uvicorn + Starlette
  app serving the same shape with the same uvicorn settings (httptools/uvloop as installed, no
  access log, log level warning), for three shapes: an ``async def`` handler, a ``def`` handler
  (both sides run it in a worker thread), and a ``def`` handler behind a sync ``authenticate``
  in ``_middleware.py`` checking a bearer token (the baseline: a sync Starlette endpoint that
  checks the token itself). Rounds alternate baseline / qr and each shape's figure is the median
  of the per-round ratios, with their spread, so a noisy neighbour hits both sides alike;
* >= 30x the requests/s of ``chalice local`` serving an equivalent route (chalice is installed in
  a throw-away venv under ``.qr-ci/chalice-venv`` on first use; skipped with a note when PyPI is
  unreachable);
* save -> new code served: p50 <= 300 ms (write the handler, poll until the new value comes back);
* WebSocket server -> client messages/s (``socket.send`` from a handler, one connection).

Load is ``wrk -t1 -c16`` (Debian's ``wrk``) for a fixed duration when it is on PATH, else an
httpx loop with 16 concurrent clients; the same tool for every server. Everything listens on
127.0.0.1 only; every loop is bounded in count and time. ``qr dev``'s console goes to a file,
as it would to a terminal (one line per request). ``BENCH_ROUNDS`` (default 5), ``BENCH_SECONDS``
(default 3) and ``BENCH_DEV_SHAPES_ONLY=1`` (the three shapes alone) adjust a run.
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TOKEN = "s3cret"
SHAPES_ONLY = os.environ.get("BENCH_DEV_SHAPES_ONLY") == "1"
"""Only the three throughput shapes (no WebSocket, reload or chalice figures)."""
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

def auth_item(request):
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() != {TOKEN!r}:
        return JSONResponse({{"error": "bad credentials"}}, 401)
    return JSONResponse({PAYLOAD!r})

app = Starlette(
    routes=[Route("/item", item), Route("/sync_item", sync_item), Route("/auth/item", auth_item)]
)
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
def serve(command: list[str], url: str, cwd: Path, log: Path) -> Iterator[int]:
    """Run a server until the block ends; yields its pid."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def load(url: str, headers: dict[str, str] | None = None) -> float:
    """Requests per second against ``url``."""
    headers = headers or {}
    if shutil.which("wrk"):
        extra = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        result = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION:g}s", *extra, url],
            capture_output=True,
            text=True,
            timeout=DURATION + 60,
            check=True,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        if not match or "Non-2xx" in result.stdout:
            raise RuntimeError(f"wrk failed:\n{result.stdout}{result.stderr}")
        return float(match.group(1))
    return asyncio.run(_httpx_load(url, headers))


async def _httpx_load(url: str, headers: dict[str, str]) -> float:
    count = 0
    deadline = time.monotonic() + DURATION

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            response = await client.get(url)
            response.raise_for_status()
            count += 1

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=10, headers=headers) as client:
        start = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
        return count / (time.monotonic() - start)


SHAPES = (
    ("JSON GET, async def handler", "/item", False),
    ("JSON GET, def handler", "/sync_item", False),
    ("JSON GET, def handler + def authenticate", "/auth/item", True),
)
"""(name, path, bearer token sent): the same path on both servers."""


Runs = dict[str, list[float]]
"""``qr``/``bare`` requests/s per round, ``qr_cpu``/``bare_cpu`` CPU microseconds per request."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), else ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_shape(
    qr_server: tuple[str, int], bare_server: tuple[str, int], path: str, auth: bool
) -> Runs:
    """Each server's requests/s and CPU per request per round, alternating baseline and qr.

    CPU time per request is the steadier figure on a shared machine: a neighbour's load slows
    requests/s, but hardly the CPU a request costs the server."""
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
    runs: Runs = {"qr": [], "bare": [], "qr_cpu": [], "bare_cpu": []}
    for _ in range(ROUNDS):
        for name, (base, pid) in (("bare", bare_server), ("qr", qr_server)):
            before = cpu_seconds(pid)
            rps = load(base + path, headers)
            after = cpu_seconds(pid)
            runs[name].append(rps)
            if before is not None and after is not None:
                runs[f"{name}_cpu"].append((after - before) / (rps * DURATION) * 1e6)
    return runs


def report_shapes(shapes: dict[str, Runs]) -> None:
    print(f"{'shape':<40} {'qr dev req/s':>13} {'bare req/s':>11}  ratio: median (min-max)")
    for name, runs in shapes.items():
        ratios = [q / b for q, b in zip(runs["qr"], runs["bare"], strict=True)]
        print(
            f"{name:<40} {statistics.median(runs['qr']):13.0f} "
            f"{statistics.median(runs['bare']):11.0f}  "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}, "
            f"{len(ratios)} rounds; goal >= 0.85x)"
        )
        if runs["qr_cpu"] and runs["bare_cpu"]:
            cpu = [b / q for q, b in zip(runs["qr_cpu"], runs["bare_cpu"], strict=True)]
            print(
                f"{'':<40} CPU per request: qr {statistics.median(runs['qr_cpu']):.0f} us, "
                f"bare {statistics.median(runs['bare_cpu']):.0f} us, bare/qr median "
                f"{statistics.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f})"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def make_project(root: Path) -> None:
    (root / "api").mkdir(parents=True)
    (root / "socket").mkdir()
    (root / "qr.yaml").write_text("name: bench\n")
    (root / "api" / "item.py").write_text(f"async def get():\n    return {PAYLOAD!r}\n")
    (root / "api" / "sync_item.py").write_text(f"def get():\n    return {PAYLOAD!r}\n")
    (root / "api" / "auth").mkdir()
    (root / "api" / "auth" / "_middleware.py").write_text(
        "from qr.runtime import HTTPError\n\n"
        "def authenticate(bearer_token):\n"
        f"    if bearer_token != {TOKEN!r}:\n"
        "        raise HTTPError(401, 'bad credentials')\n"
        "    return {'id': 'u1'}\n"
    )
    (root / "api" / "auth" / "item.py").write_text(f"def get(user):\n    return {PAYLOAD!r}\n")
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
    print(
        f"load: {tool}, {ROUNDS} rounds of {DURATION:g} s alternating baseline and qr, "
        f"127.0.0.1 only; load average before: {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="qr-bench-dev-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        project = base / "bench"
        make_project(project)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        qr_command = [sys.executable, "-m", "qr.cli", "dev", "--port", str(port)]
        qr_pid = stack.enter_context(serve(qr_command, url + "/item", project, base / "qr-dev.log"))
        bare_file = base / "bare.py"
        bare_file.write_text(BARE_APP)
        bare_port = free_port()
        bare_url = f"http://127.0.0.1:{bare_port}/item"
        command = [sys.executable, str(bare_file), str(bare_port)]
        bare_pid = stack.enter_context(serve(command, bare_url, base, base / "bare.log"))
        bare_base = f"http://127.0.0.1:{bare_port}"
        shapes = {
            name: measure_shape((url, qr_pid), (bare_base, bare_pid), path, auth)
            for name, path, auth in SHAPES
        }
        if SHAPES_ONLY:
            report_shapes(shapes)
            return
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

    report_shapes(shapes)
    qr_rps = statistics.median(shapes[SHAPES[0][0]]["qr"])
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
