from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qr.cli import scaffold
from qr.cli.console import Output
from qr.runtime.config import ARCHITECTURES, RUNTIMES, default_name


def command(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path(),
    template: Annotated[
        str, typer.Option("--template", "-t", help="Project template (see qr init --help).")
    ] = scaffold.DEFAULT_TEMPLATE,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Use the defaults; ask nothing.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Project name (default: the directory name).")
    ] = None,
    region: Annotated[str, typer.Option(help="AWS region.")] = "us-east-1",
    runtime: Annotated[
        str, typer.Option(help=f"Lambda runtime: {', '.join(RUNTIMES)}.")
    ] = "python3.12",
    architecture: Annotated[str, typer.Option(help=f"{' or '.join(ARCHITECTURES)}.")] = "arm64",
) -> None:
    """Create a new project from a template."""
    out = Output()
    name = name or default_name(directory)
    if not yes and sys.stdin.isatty():
        name = typer.prompt("Project name", default=name)
        region = typer.prompt("AWS region", default=region)
        runtime = typer.prompt("Python runtime", default=runtime)
    answers = scaffold.Answers(name=name, region=region, runtime=runtime, architecture=architecture)
    written = scaffold.render(directory, template, answers)
    out.success(
        f"created {answers.name} in {directory} ({len(written)} files, template {template})"
    )
    out.line("")
    out.line("Next:")
    steps = [] if directory.resolve() == Path.cwd() else [(f"cd {directory}", "")]
    steps += [
        ("qr dev", "run it locally on http://localhost:8000"),
        ("qr routes", "see its handlers"),
        ("pytest", "run its tests"),
    ]
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        out.line(f"  {command.ljust(width)}  # {why}" if why else f"  {command}")
