from __future__ import annotations

from pathlib import Path

from qr.cli.console import Output
from qr.cli.deploy import status
from qr.cli.deploy.target import load_target
from qr.cli.options import Json, ProjectDir, StageOption
from qr.runtime.manifest import scan


def command(project: ProjectDir = Path(), stage: StageOption = None, json: Json = False) -> None:
    """Deployed version, URLs, queue depths and dead letters, schedules with their next run."""
    out = Output()
    target = load_target(project, stage)
    data = status.collect(target, scan(target.root))
    if json:
        out.json(data)
    else:
        status.show(data, out)
