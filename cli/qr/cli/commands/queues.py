"""``qr queues``: the local queues' counts; ``redrive`` and ``purge``, locally or on a stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli import local_queues
from qr.cli.console import Output
from qr.cli.errors import QrError
from qr.cli.options import Json, ProjectDir, StageOption, Yes
from qr.cli.project import find_root

app = typer.Typer(
    help="Queues: counts of the local ones; redrive and purge, locally or on a deployed stage.",
    invoke_without_command=True,
)
QueueName = Annotated[str, typer.Argument(help="The queue (file name in queues/, e.g. emails).")]
Dead = Annotated[
    bool, typer.Option("--dead", help="Purge the queue's dead-letter queue instead of the queue.")
]
NoWait = Annotated[
    bool,
    typer.Option("--no-wait", help="Start the redrive on AWS and return (it goes on there)."),
]


@app.callback()
def show(ctx: typer.Context, project: ProjectDir = Path(), json: Json = False) -> None:
    """Show the local queues: depth, in flight, delayed and dead-letter counts."""
    if ctx.invoked_subcommand is not None:
        return
    rows = local_queues.stats(find_root(project))
    out = Output()
    if json:
        out.json([s.to_dict() for s in rows])
        return
    out.table(
        "Queues (local, .qr/dev/queues.db)",
        ["queue", "depth", "in flight", "delayed", "dead"],
        [[s.queue, str(s.depth), str(s.in_flight), str(s.delayed), str(s.dead)] for s in rows],
    )


@app.command("redrive")
def redrive(
    name: QueueName,
    project: ProjectDir = Path(),
    stage: StageOption = None,
    no_wait: NoWait = False,
    json: Json = False,
) -> None:
    """Move a queue's dead-letter jobs back onto it (with --stage: SQS's DLQ redrive, followed)."""
    out = Output()
    if stage is None:
        moved = local_queues.redrive(find_root(project), name)
        if json:
            out.json({"queue": name, "moved": moved})
        else:
            out.success(
                f"{name}: moved {moved} job{'s' if moved != 1 else ''} back from the "
                "dead-letter queue"
            )
        return
    from qr.cli.deploy import queue_ops
    from qr.cli.deploy.target import load_target

    ops = queue_ops.QueueOps(load_target(project, stage))
    report = queue_ops.redrive(ops, name, Output(rich=False) if json else out, wait=not no_wait)
    if json:
        out.json(report)


@app.command("purge")
def purge(
    name: QueueName,
    project: ProjectDir = Path(),
    stage: StageOption = None,
    dead: Dead = False,
    yes: Yes = False,
    json: Json = False,
) -> None:
    """Delete every job of a queue (waiting, delayed and in flight) or, with --dead, its DLQ."""
    out = Output()
    what = f"{name}'s dead-letter queue" if dead else name
    where = f"stage {stage}" if stage else "the local project"
    if not yes:
        if not typer.get_text_stream("stdin").isatty():
            raise QrError(
                f"purging {what} in {where} needs confirmation",
                "Run it on a terminal to confirm, or pass --yes.",
            )
        typer.confirm(f"Delete every job of {what} in {where}?", abort=True)
    if stage is None:
        count: int | None = local_queues.purge(find_root(project), name, dead=dead)
        target_name = name
    else:
        from qr.cli.deploy import queue_ops
        from qr.cli.deploy.target import load_target

        ref = queue_ops.QueueOps(load_target(project, stage)).purge(name, dead=dead)
        count, target_name = None, ref.name
    if json:
        out.json({"queue": target_name, "dead": dead, "purged": count, "stage": stage})
    elif count is None:
        out.success(f"purging {target_name} (SQS deletes its messages within 60 seconds)")
    else:
        out.success(f"{what}: deleted {count} job{'s' if count != 1 else ''}")
