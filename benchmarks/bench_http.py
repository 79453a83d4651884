"""HTTP dispatch overhead and route lookup scaling, in-process (no network).

Goals (issue 3):
* a JSON GET route through qr's app costs <= 1.3x a bare Starlette route returning the same JSON;
* looking a route up among 1,000 routes costs <= 2x looking it up among 10.

Both apps are called directly as ASGI callables with a prebuilt scope in a loop on one event loop,
so the numbers are the apps' own work. Times are CPU time of this process (``process_time``), the
best of many short alternating rounds, so other processes on a busy machine skew them little. The
handlers are ``async def`` on both sides (a sync handler adds the same worker-thread hop to both);
the sync variant is printed too.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

from qr.runtime.http import create_app
from qr.runtime.http.routing import split_path
from qr.runtime.manifest import scan

PAYLOAD = {"id": "42", "name": "Item 42", "tags": ["a", "b"], "price": 9.5}


def _scope(path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _time(app: ASGIApp, path: str, count: int) -> float:
    """Per-request time (µs) of ``count`` calls."""
    scope = _scope(path)
    start = time.process_time()
    for _ in range(count):
        await app(dict(scope), _receive, _send)
    return (time.process_time() - start) / count * 1e6


async def _compare(first: ASGIApp, second: ASGIApp, path: str, count: int) -> tuple[float, float]:
    """Best per-request times of both apps over many short alternating rounds.

    The minimum over short rounds filters out other processes' interference, and alternating
    puts both apps under the same conditions.
    """
    await _time(first, path, count)
    await _time(second, path, count)
    best = [float("inf"), float("inf")]
    for _ in range(40):
        best[0] = min(best[0], await _time(first, path, count))
        best[1] = min(best[1], await _time(second, path, count))
    return best[0], best[1]


async def _compare_paths(
    first: ASGIApp, first_path: str, second: ASGIApp, second_path: str, count: int
) -> tuple[float, float]:
    best = [float("inf"), float("inf")]
    for _ in range(40):
        best[0] = min(best[0], await _time(first, first_path, count))
        best[1] = min(best[1], await _time(second, second_path, count))
    return best[0], best[1]


def _project(root: Path, routes: int, sync: bool = False) -> Path:
    root.mkdir(parents=True)
    (root / "qr.yaml").write_text("name: bench\n")
    api = root / "api"
    for i in range(routes):
        folder = api / f"area{i % 25}" / f"thing{i}"
        folder.mkdir(parents=True)
        keyword = "def" if sync else "async def"
        (folder / "[id].py").write_text(
            f"{keyword} get(id):\n    return {{'id': id, 'name': 'Item ' + id, 'tags': ['a', 'b'], 'price': 9.5}}\n"
        )
    return root


def _starlette(sync: bool) -> Starlette:
    if sync:

        def endpoint_sync(request: Request) -> JSONResponse:
            item_id = request.path_params["id"]
            return JSONResponse(
                {"id": item_id, "name": "Item " + item_id, "tags": ["a", "b"], "price": 9.5}
            )

        return Starlette(routes=[Route("/area0/thing0/{id}", endpoint_sync)])

    async def endpoint(request: Request) -> JSONResponse:
        item_id = request.path_params["id"]
        return JSONResponse(
            {"id": item_id, "name": "Item " + item_id, "tags": ["a", "b"], "price": 9.5}
        )

    return Starlette(routes=[Route("/area0/thing0/{id}", endpoint)])


def _forget_modules() -> None:
    for name in [m for m in sys.modules if m.startswith("qr_app:")]:
        del sys.modules[name]


def _qr(root: Path) -> ASGIApp:
    _forget_modules()
    return create_app(scan(root))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for sync, count in ((False, 1000), (True, 200)):
            label = "sync " if sync else "async"
            qr = _qr(_project(base / f"one-{label.strip()}", 1, sync))
            bare = _starlette(sync)
            bare_us, qr_us = asyncio.run(_compare(bare, qr, "/area0/thing0/42", count))
            print(
                f"dispatch {label}: starlette {bare_us:7.1f} us/req, qr {qr_us:7.1f} us/req, "
                f"ratio {qr_us / bare_us:.2f}x (goal <= 1.3x)"
            )
        small = _qr(_project(base / "ten", 10))
        small_router = small.router  # type: ignore[attr-defined]
        large = _qr(_project(base / "thousand", 1000))
        large_router = large.router  # type: ignore[attr-defined]
        # look up the last-ranked route in each (the worst case of a linear scan)
        small_segments = split_path(b"/area9/thing9/42")
        large_segments = split_path(b"/area24/thing999/42")
        assert small_router.match(small_segments) is not None
        assert large_router.match(large_segments) is not None
        lookups = 5000
        timings = [float("inf"), float("inf")]
        pairs = ((small_router, small_segments), (large_router, large_segments))
        for _ in range(40):
            for index, (router, segments) in enumerate(pairs):
                start = time.process_time()
                for _ in range(lookups):
                    router.match(segments)
                timings[index] = min(timings[index], (time.process_time() - start) / lookups * 1e9)
        print(
            f"lookup: 10 routes {timings[0]:6.0f} ns, 1000 routes {timings[1]:6.0f} ns, "
            f"ratio {timings[1] / timings[0]:.2f}x (goal <= 2x)"
        )
        small_us, large_us = asyncio.run(
            _compare_paths(small, "/area9/thing9/42", large, "/area24/thing999/42", 1000)
        )
        print(
            f"request through the app: 10 routes {small_us:6.1f} us, 1000 routes {large_us:6.1f} us, "
            f"ratio {large_us / small_us:.2f}x (goal <= 2x)"
        )


if __name__ == "__main__":
    main()
