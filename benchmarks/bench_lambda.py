"""The Lambda bundle: cold import, runtime size, per-event dispatch overhead.

Goals (issue 6):
* importing ``qr.runtime.aws.entry`` from the scaffold's bundle in a fresh interpreter
  (``python -X importtime``) costs <= 150 ms here;
* the runtime-only part of the bundle (``qr/runtime`` + its own dependencies) is <= 1.5 MB zipped;
* per-event dispatch overhead vs calling the handler function directly is printed.

The scaffold (``qr init``) is built for this interpreter's Python and x86_64, extracted, and run
as Lambda would: ``-I -S`` with only the bundle (and boto3, which Lambda provides) on sys.path and
``PYTHONDONTWRITEBYTECODE`` (Lambda's code directory is read-only, so nothing compiled at run time
is kept). Every figure is the median of several runs, printed with its baseline from the same run:
the interpreter's own start-up for cold numbers, the direct handler call for dispatch.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from qr.cli.bundle import Bundle, build_bundle
from qr.cli.scaffold import Answers, render
from qr.runtime.manifest import scan

RUNS = 7
EVENTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "events"
LOCAL = "python{}.{}".format(*sys.version_info[:2])
PROVIDED = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")


def _project(base: Path) -> Path:
    root = base / "demo"
    render(root, "default", Answers(name="demo", runtime=LOCAL, architecture="x86_64"))
    return root


def _provided(base: Path) -> Path:
    provided = base / "provided"
    provided.mkdir()
    site = Path(boto3.__file__).parents[1]
    for name in PROVIDED:
        for candidate in (site / name, site / f"{name}.py"):
            if candidate.exists():
                (provided / candidate.name).symlink_to(candidate)
    return provided


def _run(
    code: str, paths: list[Path], *, importtime: bool = False
) -> subprocess.CompletedProcess[str]:
    prefix = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    args = [sys.executable, "-I", "-S", *(["-X", "importtime"] if importtime else []), "-c"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LOG_LEVEL": "WARNING",
    }
    if paths:
        env["LAMBDA_TASK_ROOT"] = str(paths[0])
    return subprocess.run(
        [*args, prefix + code], capture_output=True, text=True, env=env, check=True, timeout=120
    )


def _import_ms(paths: list[Path], module: str = "qr.runtime.aws.entry") -> float:
    """Cumulative -X importtime of ``module`` (reported in microseconds)."""
    stderr = _run(f"import {module}", paths, importtime=True).stderr
    pattern = rf"\|\s*(\d+) \|\s*{re.escape(module)}\s*$"
    match = re.search(pattern, stderr, re.MULTILINE)
    assert match, stderr[-2000:]
    return int(match.group(1)) / 1000


def _wall_ms(code: str, paths: list[Path]) -> float:
    started = time.perf_counter()
    _run(code, paths)
    return (time.perf_counter() - started) * 1000


FIRST_EVENT = """
import json, time
started = time.perf_counter()
from qr.runtime.aws.entry import handler
event = json.loads({event!r})
class Context:
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 30_000
response = handler(event, Context())
assert response["statusCode"] == 200, response
print((time.perf_counter() - started) * 1000)
"""


def _first_event_ms(paths: list[Path]) -> float:
    event = (EVENTS / "http_get.json").read_text()
    event = json.dumps({**json.loads(event), "rawPath": "/items/7", "rawQueryString": ""})
    return float(_run(FIRST_EVENT.format(event=event), paths).stdout.strip())


def _median(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(RUNS))


def cold_start(base: Path, bundle: Bundle, provided: Path, label: str) -> None:
    extracted = base / f"extracted-{label}"
    zipfile.ZipFile(bundle.path).extractall(extracted)
    paths = [extracted, provided]
    startup = _median(lambda: _wall_ms("pass", []))
    asyncio_ms = _median(lambda: _import_ms([], "asyncio"))
    imported = _median(lambda: _import_ms(paths))
    first = _median(lambda: _first_event_ms(paths))
    print(f"cold start, {label}:")
    print(f"  interpreter start-up (baseline)      {startup:7.1f} ms wall")
    print(f"  import asyncio (baseline)            {asyncio_ms:7.1f} ms (-X importtime)")
    print(
        f"  import qr.runtime.aws.entry          {imported:7.1f} ms (-X importtime; goal <= 150; "
        f"{imported / asyncio_ms:.1f}x asyncio)"
    )
    print(
        f"  import + cold init + first GET       {first:7.1f} ms ({first / startup:.1f}x start-up)"
    )


def runtime_size(base: Path, cache: Path) -> None:
    empty = base / "empty"
    (empty / "api").mkdir(parents=True)
    (empty / "api" / "index.py").write_text("def get():\n    return 'ok'\n")
    (empty / "qr.yaml").write_text(f"name: empty\nruntime: {LOCAL}\narchitecture: arm64\n")
    for precompile in (False, True):
        built = build_bundle(
            scan(empty), "production", base / f"size-{precompile}", cache_dir=cache,
            precompile=precompile,
        )  # fmt: skip
        runtime = sum(f.compressed for f in built.folders if f.name not in ("api", "qr.yaml"))
        note = "with .pyc" if precompile else "sources only"
        goal = " (goal <= 1.50 MB)" if not precompile else ""
        print(f"runtime-only part, arm64, {note:12}  {runtime / 1024 / 1024:5.2f} MB zipped{goal}")
        if not precompile:
            for folder in built.folders[:6]:
                print(f"  {folder.name:28} {folder.compressed / 1024:8.1f} KB zipped")


def dispatch_overhead(root: Path) -> None:
    from qr.runtime.aws import http_api
    from qr.runtime.aws._clients import Clients
    from qr.runtime.aws.entry import LambdaRuntime

    environ = {
        "LOG_LEVEL": "WARNING",
        "QR_QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/1/demo-production-",
    }
    runtime = LambdaRuntime(root, environ, Clients(lambda *a, **k: None))
    event = json.loads((EVENTS / "http_get.json").read_text())
    event.update(rawPath="/items/7", rawQueryString="", cookies=[])
    record = json.loads((EVENTS / "sqs_record.json").read_text())
    record["body"] = json.dumps({"to": "a@example.com"})
    sqs_event = {"Records": [record]}
    items = sys.modules["qr_app:api/items/[id].py"]
    emails = sys.modules["qr_app:queues/emails.py"]

    class Context:
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    class Job:
        job_id = "bench"

    context = Context()
    direct_job = Job()
    scope = http_api.scope_of(event, "bench", None)
    app = runtime.app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    def asgi() -> None:
        runtime.loop.run_until_complete(app(dict(scope), receive, send))

    sink = Path(os.devnull).open("w")  # noqa: SIM115 - the queue handler prints
    stdout, sys.stdout = sys.stdout, sink
    try:
        rows = [
            ("HTTP GET /items/7", lambda: runtime.dispatch(event, context), lambda: items.get("7")),
            ("  same, ASGI only", asgi, lambda: items.get("7")),
            (
                "SQS batch of 1",
                lambda: runtime.dispatch(sqs_event, context),
                lambda: emails.handler({"to": "a@example.com"}, direct_job),
            ),
        ]
        print("per-event dispatch (in-process, warm):", file=stdout)
        for label, through, direct in rows:
            via = _per_call(through, 2000)
            bare = _per_call(direct, 20000)
            print(
                f"  {label:18} {via * 1e6:8.1f} us through the entry point, "
                f"{bare * 1e6:6.2f} us direct: overhead {(via - bare) * 1e6:8.1f} us/event",
                file=stdout,
            )
    finally:
        sys.stdout = stdout
        sink.close()
        runtime.loop.close()


def _per_call(function: Callable[[], Any], count: int) -> float:
    function()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            function()
        best = min(best, (time.perf_counter() - started) / count)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="qr-bench-lambda-") as scratch:
        base = Path(scratch)
        cache = base / "cache"
        root = _project(base)
        provided = _provided(base)
        manifest = scan(root)
        started = time.perf_counter()
        compiled = build_bundle(manifest, "production", base / "out-pyc", cache_dir=cache)
        cold_build = time.perf_counter() - started
        started = time.perf_counter()
        sources = build_bundle(
            manifest, "production", base / "out-src", cache_dir=cache, precompile=False
        )
        warm_build = time.perf_counter() - started
        print(
            f"scaffold bundle: {compiled.size / 1024:.0f} KB with .pyc, {sources.size / 1024:.0f} KB without"
        )
        print(f"build: {cold_build:.2f} s with pip, {warm_build:.2f} s from the dependency cache")
        cold_start(base, compiled, provided, "precompiled .pyc")
        cold_start(base, sources, provided, "sources only")
        runtime_size(base, cache)
        dispatch_overhead(root)


if __name__ == "__main__":
    main()
