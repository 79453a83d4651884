"""The handler table printed by ``qr routes`` and ``qr dev``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from qr.cli.console import Output
from qr.runtime import status_route
from qr.runtime.manifest import Manifest


def _seconds(value: float) -> str:
    return f"{value:g}s"


def next_runs(manifest: Manifest, now: datetime | None = None) -> dict[str, datetime | None]:
    now = now or datetime.now(UTC)
    return {s.name: s.expression.next_run(now, started=now) for s in manifest.schedules}


def routes_data(manifest: Manifest, now: datetime | None = None) -> dict[str, Any]:
    data = manifest.to_dict()
    for route in data["routes"]:
        route["file"] = _route_file(manifest, route["file"])
    runs = next_runs(manifest, now)
    for schedule in data["schedules"]:
        run = runs[schedule["name"]]
        schedule["next_run"] = run.isoformat() if run else None
    return data


def print_routes(out: Output, manifest: Manifest, now: datetime | None = None) -> None:
    out.table(
        "Routes",
        ["route", "methods", "params", "middleware", "file"],
        [
            [
                r.path,
                " ".join(r.methods),
                ", ".join(r.params) or "-",
                ", ".join(h for h, f in r.middleware.items() if f) or "-",
                _route_file(manifest, r.file),
            ]
            for r in manifest.routes
        ],
    )
    out.table(
        "Queues",
        ["queue", "type", "payload", "timeout", "attempts", "concurrency", "rate limit", "file"],
        [
            [
                q.name,
                "fifo" if q.fifo else "standard",
                q.payload.model.rsplit(".", 1)[-1] if q.payload else "-",
                _seconds(q.config.timeout),
                str(q.config.max_attempts),
                str(q.config.concurrency),
                q.config.rate_limit.describe() if q.config.rate_limit else "-",
                q.file,
            ]
            for q in manifest.queues
        ],
    )
    socket_rows = []
    if manifest.socket:
        hooks = ", ".join(h for h, f in manifest.socket.middleware.items() if f) or "-"
        socket_rows = [[h.action, hooks, h.file] for h in manifest.socket.handlers]
    out.table("Socket", ["action", "middleware", "file"], socket_rows)
    runs = next_runs(manifest, now)
    out.table(
        "Schedules",
        ["schedule", "expression", "next run (UTC)", "file"],
        [
            [
                s.name,
                s.expression.normalized,
                runs[s.name].strftime("%Y-%m-%d %H:%M") if runs[s.name] else "never",  # type: ignore[union-attr]
                s.file,
            ]
            for s in manifest.schedules
        ],
    )


def _route_file(manifest: Manifest, file: str) -> str:
    """The route's file; qr's own job status route has none (it stands where one would be, so
    the folder's middleware applies to it)."""
    if file == status_route.FILE and not (manifest.root / file).exists():
        queues = ", ".join(sorted(q.name for q in manifest.queues if q.config.status_route))
        return f"(qr job status route for {queues})"
    return file
