from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from qr.cli.console import Output
from qr.cli.deploy import logs
from qr.cli.deploy.target import load_target
from qr.cli.options import ProjectDir, StageOption


def command(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    tail: Annotated[
        bool, typer.Option("--tail", "-f", help="Keep streaming new lines (Ctrl+C stops).")
    ] = False,
    since: Annotated[
        str, typer.Option("--since", help="How far back to start: 90s, 30m, 2h, 1d.")
    ] = "30m",
    filter: Annotated[
        str | None,
        typer.Option("--filter", help="Only lines containing TEXT (or a CloudWatch pattern)."),
    ] = None,
) -> None:
    """Show the stage's CloudWatch logs; --tail streams them."""
    out = Output()
    target = load_target(project, stage)
    start_ms = int((time.time() - logs.parse_since(since).total_seconds()) * 1000)
    client = target.aws.client("logs")
    pattern = logs.filter_pattern(filter)
    if not tail:
        poller = logs.Poller(client, target.log_group, start_ms=start_ms, pattern=pattern)
        events = poller.fetch()
        for event in events:
            logs.render(event, out)
        if not events:
            out.line(f"no log lines in {target.log_group} in the last {since}")
        return
    out.line(f"streaming {target.log_group} (Ctrl+C to stop)")
    try:
        for event in logs.follow(
            client, target.log_group, start_ms=start_ms, pattern=pattern, out=out
        ):
            logs.render(event, out)
    except KeyboardInterrupt:
        out.line("stopped")
