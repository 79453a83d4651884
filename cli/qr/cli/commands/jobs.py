from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from qr.cli import jobs
from qr.cli.console import Output
from qr.cli.errors import QrError
from qr.cli.options import Json, ProjectDir
from qr.cli.project import find_root, load_manifest

Status = Annotated[
    str | None,
    typer.Option("--status", help="Only jobs in this status (queued, running, succeeded, ...)."),
]
Limit = Annotated[int, typer.Option("--limit", "-n", help="At most this many jobs, newest first.")]
Stage = Annotated[
    str | None,
    typer.Option("--stage", "-s", help="Read a deployed stage's job table instead of qr dev's."),
]


ACTIONS = ("cancel", "retry", "replay", "promote")


def _act(action: str, job_id: str | None, project: Path, stage: str | None, json: bool) -> None:
    """The dashboard's job buttons from the command line: the same request to the running
    ``qr dev`` (its control endpoint, with the per-run token)."""
    from qr.cli.dev.control import job_action

    if job_id is None:
        raise QrError(
            f"qr jobs {action} needs a job id", f"e.g. qr jobs {action} 3f2c... (qr jobs lists ids)"
        )
    if stage is not None:
        raise QrError(
            f"qr jobs {action} acts on qr dev's jobs only",
            "SQS has no per-message retry or replay: on AWS use qr queues redrive NAME --stage S",
        )
    data = job_action(find_root(project), action, job_id)
    out = Output()
    if json:
        out.json(data)
    elif "new_job_id" in data:
        out.success(f"{action}: job {job_id} pushed again as job {data['new_job_id']}")
    elif data.get("promoted"):
        out.success(f"job {job_id} runs now")
    else:
        asked = " (it is running: asked to stop)" if data.get("cancel_requested") else ""
        out.success(f"job {job_id} is {data.get('status')}{asked}")


def command(
    queue: Annotated[
        str | None,
        typer.Argument(
            help="Only this queue's jobs; or show, cancel, retry, replay, promote and a job id."
        ),
    ] = None,
    job_id: Annotated[
        str | None, typer.Argument(help="With show/cancel/retry/replay/promote: the job.")
    ] = None,
    status: Status = None,
    limit: Limit = 20,
    stage: Stage = None,
    project: ProjectDir = Path(),
    json: Json = False,
) -> None:
    """Jobs and their state: `qr jobs [QUEUE]` lists them, `qr jobs show ID` shows one
    (status, progress, result, error). Local (qr dev) by default; --stage for AWS.
    `qr jobs cancel|retry|replay|promote ID` act on a job of the running qr dev (the dashboard's
    buttons): cancel it, run a dead or failed one again, push its payload again as a new job, run
    a delayed one now."""
    if queue in ACTIONS:
        _act(queue, job_id, project, stage, json)
        return
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
