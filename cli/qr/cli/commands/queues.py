from __future__ import annotations

from pathlib import Path

from qr.cli import local_queues
from qr.cli.console import Output
from qr.cli.options import Json, ProjectDir
from qr.cli.project import find_root


def command(project: ProjectDir = Path(), json: Json = False) -> None:
    """Show the local queues: depth, in flight, delayed and dead-letter counts."""
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
