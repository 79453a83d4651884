"""The local queues from the command line: ``qr queues [redrive|purge]``, ``qr dev queue``, ``qr dev redrive``.

These open the project's queue database (``.qr/dev/queues.db``, the one ``qr dev`` runs) directly:
SQLite in WAL mode lets this process write while the dev server runs, and the server's worker
notices other processes' commits within ``poll_interval`` (``PRAGMA data_version``). Without a
running server the jobs simply wait in the database for the next ``qr dev``.

They know the queues from the file names in ``queues/`` (``queue_names``) and import no handler,
so a broken file elsewhere in the project does not stop them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from qr.cli.errors import QrError
from qr.runtime._suggest import did_you_mean
from qr.runtime.local.engine import DB_PATH, Engine, PushResult, QueueStats
from qr.runtime.manifest import queue_names
from qr.runtime.queues import Queue, QueueError


def open_engine(root: Path) -> Engine:
    return Engine(root / DB_PATH)


def stats(root: Path) -> list[QueueStats]:
    """Depth, in flight, delayed and dead counts of every queue of the project."""
    engine = open_engine(root)
    try:
        known = list(queue_names(root))
        return [s for s in engine.stats(known) if s.queue in known]
    finally:
        engine.close()


def read_payload(argument: str, stdin: IO[str] | None = None) -> object:
    """``PAYLOAD`` as the command takes it: JSON text, ``@file`` or ``-`` (stdin).

    JSON that parses is pushed as that value; any other text is pushed as a string; a file that is
    not UTF-8 is pushed as bytes.
    """
    if argument == "-":
        text = (stdin or sys.stdin).read()
    elif argument.startswith("@"):
        path = Path(argument[1:])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise QrError(
                f"cannot read the payload file {path}: {exc.strerror}",
                "pass @path/to/file.json, JSON text, or - to read standard input",
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    else:
        text = argument
    try:
        value: object = json.loads(text)
    except ValueError:
        return text
    return value


def push(
    root: Path,
    name: str,
    payload: object,
    *,
    group: str | None = None,
    dedupe: str | None = None,
    delay: float = 0,
) -> PushResult:
    """Validate like ``queues[name].push`` does and enqueue into the project's database."""
    _check_name(root, name)
    queue = Queue(name)
    try:
        if group is not None:
            queue = queue.group(group)
        if dedupe is not None:
            queue = queue.dedupe(dedupe)
        job = queue.prepare(payload, delay)
    except QueueError as exc:
        raise QrError(exc.message, exc.hint) from None
    engine = open_engine(root)
    try:
        return engine.push(job)
    finally:
        engine.close()


def redrive(root: Path, name: str) -> int:
    """Move the queue's dead-letter jobs back onto it; returns how many."""
    _check_name(root, name)
    engine = open_engine(root)
    try:
        return engine.redrive(name)
    finally:
        engine.close()


def purge(root: Path, name: str, *, dead: bool = False) -> int:
    """Delete the queue's jobs (or its dead-letter jobs); returns how many."""
    _check_name(root, name)
    engine = open_engine(root)
    try:
        return engine.purge(name, dead=dead)
    finally:
        engine.close()


def _check_name(root: Path, name: str) -> None:
    known = list(queue_names(root))
    if name not in known:
        raise QrError(
            f"there is no queue named {name!r}.{did_you_mean(name, known)}",
            f"known queues: {', '.join(known) or 'none (add a file to queues/)'}",
        )
