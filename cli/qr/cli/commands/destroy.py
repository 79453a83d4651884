from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli.console import Output
from qr.cli.deploy.pipeline import Deployer, default_build, existing_build
from qr.cli.options import ProjectDir, StageOption, Yes
from qr.cli.project import find_root


def command(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    yes: Yes = False,
    no_build: Annotated[
        bool,
        typer.Option("--no-build", help="Use .qr/build/<stage>/ as it is (from qr build)."),
    ] = False,
) -> None:
    """Delete every AWS resource of the stage (terraform destroy), after typing its name back."""
    deployer = Deployer(
        find_root(project),
        stage,
        out=Output(),
        build=existing_build if no_build else default_build,
    )
    deployer.destroy(yes=yes)
