"""``qr dev queue NAME PAYLOAD`` and ``qr dev redrive NAME`` (registered on the ``qr dev`` group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli import local_queues
from qr.cli.console import Output
from qr.cli.options import Json, ProjectDir
from qr.cli.project import find_root


def queue(
    name: Annotated[str, typer.Argument(help="The queue (file name in queues/, e.g. emails).")],
    payload: Annotated[
        str, typer.Argument(help="JSON text, @file to read a file, or - to read standard input.")
    ],
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="Message group (FIFO queues).")
    ] = None,
    dedupe: Annotated[
        str | None, typer.Option("--dedupe", help="Deduplication id (FIFO queues).")
    ] = None,
    delay: Annotated[float, typer.Option("--delay", help="Seconds before it runs (0-900).")] = 0,
    project: ProjectDir = Path(),
    json: Json = False,
) -> None:
    """Push a job onto a queue of the local project (the running qr dev picks it up)."""
    root = find_root(project)
    value = local_queues.read_payload(payload)
    result = local_queues.push(root, name, value, group=group, dedupe=dedupe, delay=delay)
    out = Output()
    if json:
        out.json(
            {
                "job_id": result.job_id,
                "queue": name,
                "sequence_number": result.sequence_number,
                "duplicate": result.duplicate,
            }
        )
    elif result.duplicate:
        out.success(f"{name}: duplicate of job {result.job_id} (within the 5-minute dedupe window)")
    else:
        out.success(f"{name}: queued job {result.job_id}")


def redrive(
    name: Annotated[str, typer.Argument(help="The queue whose dead-letter jobs to move back.")],
    project: ProjectDir = Path(),
    json: Json = False,
) -> None:
    """Move a queue's dead-letter jobs back onto the queue (as new jobs)."""
    moved = local_queues.redrive(find_root(project), name)
    out = Output()
    if json:
        out.json({"queue": name, "moved": moved})
    else:
        out.success(
            f"{name}: moved {moved} job{'s' if moved != 1 else ''} back from the dead-letter queue"
        )
