"""``qr jobs``: job state from the command line, through the ``JobStore`` port.

Locally (the default) the store is the project's queue database (``.qr/dev/queues.db``, the one
``qr dev`` runs; SQLite in WAL mode lets this process read while the server writes), the way
``qr queues`` reads it. With ``--stage`` it is the stage's DynamoDB table, read with the
project's AWS credentials (``AWS_ENDPOINT_URL`` applies as for every command).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws, aws_errors
from qr.cli.deploy.target import load_target
from qr.cli.errors import QrError
from qr.runtime._suggest import did_you_mean
from qr.runtime.aws._clients import Clients
from qr.runtime.aws.job_state import DynamoJobStore
from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.manifest import Manifest
from qr.runtime.ports import STATUSES, JobState, JobStore

BAR_WIDTH = 20


@contextmanager
def open_store(
    manifest: Manifest, stage: str | None = None, aws: Aws | None = None
) -> Iterator[tuple[JobStore, str]]:
    """The store and a description of where it is (for titles and errors)."""
    if stage is None:
        engine = Engine(manifest.root / DB_PATH)
        try:
            yield SqliteJobStore(engine), f"local, {DB_PATH}"
        finally:
            engine.close()
        return
    target = load_target(manifest.root, stage, aws)
    table = str(target.outputs.get("jobs_table") or f"{target.prefix}-jobs")
    clients = Clients(lambda service, **_: target.aws.client(service))
    with aws_errors(f"reading the job table {table}"):
        yield DynamoJobStore(table, clients), f"stage {target.stage}, DynamoDB {table}"


def list_jobs(
    manifest: Manifest,
    queue: str | None,
    status: str | None,
    limit: int,
    stage: str | None = None,
    aws: Aws | None = None,
) -> tuple[Sequence[JobState], str]:
    if queue is not None:
        known = [q.name for q in manifest.queues]
        if queue not in known:
            raise QrError(
                f"there is no queue named {queue!r}.{did_you_mean(queue, known)}",
                f"known queues: {', '.join(known) or 'none (add a file to queues/)'}",
            )
    if status is not None and status not in STATUSES:
        raise QrError(
            f"unknown job status {status!r}.{did_you_mean(status, STATUSES)}",
            f"use one of: {', '.join(STATUSES)}",
        )
    if limit < 1:
        raise QrError(f"--limit must be at least 1, got {limit}", "e.g. --limit 50")
    with open_store(manifest, stage, aws) as (store, where):
        return store.list(queue=queue, status=status, limit=limit), where


def show_job(
    manifest: Manifest, job_id: str, stage: str | None = None, aws: Aws | None = None
) -> JobState:
    with open_store(manifest, stage, aws) as (store, where):
        state = store.get(job_id)
    if state is None:
        raise QrError(
            f"no job {job_id!r} in {where}",
            "check the id (qr jobs lists recent jobs); finished jobs are kept for their queue's "
            "config['keep_results'] seconds, and a queue with keep_results = 0 keeps none"
            + ("" if stage is None else "; on AWS a job has state once a worker has received it"),
        )
    return state


def progress_bar(value: float | None, width: int = BAR_WIDTH) -> str:
    if value is None:
        return ""
    filled = round(value * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {value * 100:.0f}%"


def print_list(states: Sequence[JobState], where: str, out: Output, now: float) -> None:
    out.table(
        f"Jobs ({where})",
        ["job id", "queue", "status", "attempts", "progress", "queued", "finished"],
        [
            [
                s.job_id,
                s.queue,
                s.status + (" (cancel asked)" if s.cancel_requested else ""),
                str(s.attempts),
                "" if s.progress is None else f"{s.progress * 100:.0f}%",
                _ago(s.queued_at, now),
                _ago(s.finished_at, now),
            ]
            for s in states
        ],
    )


def print_state(state: JobState, out: Output, now: float) -> None:
    out.line(f"job       {state.job_id}")
    out.line(f"queue     {state.queue}")
    status = state.status + (" (cancel asked)" if state.cancel_requested else "")
    out.line(f"status    {status}")
    out.line(f"attempts  {state.attempts}")
    if state.user is not None:
        out.line(f"user      {state.user}")
    for label, value in (
        ("queued", state.queued_at),
        ("started", state.started_at),
        ("finished", state.finished_at),
    ):
        if value is not None:
            out.line(f"{label:<9} {_iso(value)} ({_ago(value, now)})")
    if state.progress is not None:
        message = f" {state.progress_message}" if state.progress_message else ""
        out.line(f"progress  {progress_bar(state.progress)}{message}")
    if state.result is not None:
        out.line("result")
        out.line(_indent(json.dumps(state.result, indent=2, ensure_ascii=False)))
    if state.error is not None:
        out.line(f"error     {state.error.get('type', 'Error')}: {state.error.get('message', '')}")
        if state.error.get("traceback"):
            out.line(_indent(state.error["traceback"]))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _ago(value: float | None, now: float) -> str:
    if value is None:
        return ""
    seconds = max(0.0, now - value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"
