from __future__ import annotations

from pathlib import Path

from qr.cli.deploy.pipeline import for_command
from qr.cli.options import NoBuild, ProjectDir, StageOption, Yes


def command(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    yes: Yes = False,
    no_build: NoBuild = False,
) -> None:
    """Delete every AWS resource of the stage (terraform destroy), after typing its name back."""
    for_command(project, stage, no_build=no_build).destroy(yes=yes)
