from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from qr.cli import jobs
from qr.cli.console import Output
from qr.cli.errors import QrError
from qr.cli.options import Json, ProjectDir
from qr.cli.project import load_manifest

Status = Annotated[
    str | None,
    typer.Option("--status", help="Only jobs in this status (queued, running, succeeded, ...)."),
]
Limit = Annotated[int, typer.Option("--limit", "-n", help="At most this many jobs, newest first.")]
Stage = Annotated[
    str | None,
    typer.Option("--stage", "-s", help="Read a deployed stage's job table instead of qr dev's."),
]


def command(
    queue: Annotated[
        str | None, typer.Argument(help="Only this queue's jobs; or 'show' followed by a job id.")
    ] = None,
    job_id: Annotated[str | None, typer.Argument(help="With 'show': the job to show.")] = None,
    status: Status = None,
    limit: Limit = 20,
    stage: Stage = None,
    project: ProjectDir = Path(),
    json: Json = False,
) -> None:
    """Jobs and their state: `qr jobs [QUEUE]` lists them, `qr jobs show ID` shows one
    (status, progress, result, error). Local (qr dev) by default; --stage for AWS."""
    manifest = load_manifest(project)
    out = Output()
    if queue == "show":
        if job_id is None:
            raise QrError(
                "qr jobs show needs a job id", "e.g. qr jobs show 3f2c... (qr jobs lists ids)"
            )
        state = jobs.show_job(manifest, job_id, stage)
        if json:
            out.json(state.to_dict())
        else:
            jobs.print_state(state, out, time.time())
        return
    if job_id is not None:
        raise QrError(
            f"unexpected argument {job_id!r}",
            "qr jobs [QUEUE] lists jobs; qr jobs show ID shows one",
        )
    states, where = jobs.list_jobs(manifest, queue, status, limit, stage)
    if json:
        out.json([s.to_dict() for s in states])
    else:
        jobs.print_list(states, where, out, time.time())
