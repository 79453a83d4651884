from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli.deploy.pipeline import for_command
from qr.cli.options import NoBuild, ProjectDir, StageOption, Yes


def command(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Show what would change, then stop.")
    ] = False,
    yes: Yes = False,
    no_build: NoBuild = False,
) -> None:
    """Build, apply the Terraform (progress shown), then point the 'current' alias at the new version."""
    for_command(project, stage, no_build=no_build).deploy(plan_only=plan, yes=yes)
