from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli.console import Output
from qr.cli.deploy.pipeline import is_interactive
from qr.cli.deploy.target import load_target
from qr.cli.deploy.versions import Versions, history, rollback
from qr.cli.errors import QrError
from qr.cli.options import ProjectDir, StageOption, Yes


def command(
    version: Annotated[
        str | None, typer.Argument(help="Version to move to (default: the previous one).")
    ] = None,
    project: ProjectDir = Path(),
    stage: StageOption = None,
    yes: Yes = False,
) -> None:
    """Move the 'current' alias back to an earlier version (the code only) in seconds."""
    out = Output()
    target = load_target(project, stage)
    versions = Versions(target.aws, target.function, target.alias)
    out.table(
        f"Versions of {target.function}",
        ["version", "deployed", "by", "git", ""],
        history(versions, target.log, target.stage),
    )
    if not yes:
        if not is_interactive():
            raise QrError(
                "qr rollback needs a confirmation and there is no terminal to ask on",
                "Run it again with --yes.",
            )
        which = f"version {version}" if version else "the previous version"
        if not typer.confirm(f"Move {target.alias} of stage {target.stage} to {which}?"):
            raise QrError("rollback cancelled; nothing was changed")
    result = rollback(versions, target.log, target.stage, version)
    if result.record is None:
        out.success(f"{target.alias} already points at version {result.version}; nothing to do")
        return
    out.success(
        f"stage {target.stage}: {target.alias} moved from version {result.previous} "
        f"to {result.version}"
    )
    out.line(
        "Only the code moved back: queues, schedules, API routes, environment and the rest of "
        "the infrastructure stay as last deployed. Run qr deploy to move forward again."
    )
