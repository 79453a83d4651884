"""``qr dev``: run the project locally; ``qr dev schedule NAME`` fires a schedule on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli.commands import dev_queues
from qr.cli.console import Output
from qr.cli.options import Json, ProjectDir
from qr.cli.project import find_root

app = typer.Typer(
    name="dev",
    help="Run the project locally: HTTP + WebSocket on one port, queues, schedules, hot reload.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0 picks a free one).")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="KEY=VALUE for the handlers; wins over the shell and .env."
        ),
    ] = None,
    no_reload: Annotated[
        bool, typer.Option("--no-reload", help="Do not watch files for changes.")
    ] = False,
    docker: Annotated[
        bool,
        typer.Option(
            "--docker",
            help="Run the handlers in warm Lambda-like containers built from the deploy bundle.",
        ),
    ] = False,
    dashboard: Annotated[
        bool | None,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="Serve the dashboard under /_qr/ (default: on when bound to localhost only).",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds running jobs and requests get to finish at Ctrl+C (a second Ctrl+C "
            "quits at once); unfinished jobs go back to their queue.",
        ),
    ] = 5.0,
    reload_timeout: Annotated[
        float,
        typer.Option(
            "--reload-timeout",
            min=0.1,
            help="Seconds a hot reload may spend importing changed files before it gives up "
            "(the previous code keeps serving).",
        ),
    ] = 10.0,
    project: ProjectDir = Path(),
) -> None:
    """Serve HTTP and WebSocket on one port, run queues and schedules, reload on save."""
    if ctx.invoked_subcommand is not None:
        return
    from qr.cli.dev.env import parse_assignments
    from qr.cli.dev.server import DevOptions, run

    options = DevOptions(
        find_root(project),
        host=host,
        port=port,
        env=parse_assignments(env or []),
        reload=not no_reload,
        docker=docker,
        dashboard=dashboard,
        grace=grace,
        reload_timeout=reload_timeout,
    )
    run(options)


app.command("queue")(dev_queues.queue)
app.command("redrive")(dev_queues.redrive)


@app.command("schedule")
def schedule(
    name: Annotated[str, typer.Argument(help="The schedule (file name in schedules/).")],
    project: ProjectDir = Path(),
    json: Json = False,
) -> None:
    """Run a schedule now on the running qr dev server."""
    from qr.cli.dev.control import fire_schedule

    result = fire_schedule(find_root(project), name)
    out = Output()
    if json:
        out.json(result)
        return
    upcoming = result.get("next_run") or "never"
    if result.get("ok"):
        out.success(
            f"{name} ran as job {result['job_id']} in {result['duration_ms']:.1f} ms "
            f"(next run {upcoming})"
        )
    else:
        out.error(f"{name} failed (job {result['job_id']})", str(result.get("error")))
        raise typer.Exit(1)
