from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qr.cli.console import Output
from qr.cli.deploy.env import COLD_START_NOTE, Environment, read_value
from qr.cli.deploy.target import load_target
from qr.cli.options import Json, ProjectDir, StageOption

app = typer.Typer(
    help="The stage's settings and secrets (SSM Parameter Store, read at cold start).",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(help="Setting name, e.g. STRIPE_KEY.")]


@app.command("list")
def list_(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    show: Annotated[bool, typer.Option("--show", help="Print the values too.")] = False,
    json: Json = False,
) -> None:
    """List the settings (values hidden unless --show)."""
    out = Output()
    target = load_target(project, stage)
    parameters = Environment(target).list(show=show)
    if json:
        out.json(
            [
                {"name": p.name, "type": p.type, "modified": p.modified, "version": p.version}
                | ({"value": p.value} if show else {})
                for p in parameters
            ]
        )
        return
    columns = ["name", "type", "modified", "version"] + (["value"] if show else [])
    rows = [
        [p.name, p.type, p.modified, str(p.version)] + ([p.value or ""] if show else [])
        for p in parameters
    ]
    out.table(f"Settings of stage {target.stage} ({target.ssm_path})", columns, rows)


@app.command("get")
def get(name: Name, project: ProjectDir = Path(), stage: StageOption = None) -> None:
    """Print one setting's value."""
    parameter = Environment(load_target(project, stage)).get(name)
    Output().line(parameter.value or "")


@app.command("set")
def set_(
    name: Name,
    value: Annotated[
        str | None, typer.Argument(help="The value (or use --from-file, or pipe it on stdin).")
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the value from this file.")
    ] = None,
    project: ProjectDir = Path(),
    stage: StageOption = None,
) -> None:
    """Store a setting as an encrypted SecureString."""
    out = Output()
    target = load_target(project, stage)
    stored = Environment(target).set(name, read_value(value, from_file))
    out.success(f"{name} set for stage {target.stage} (version {stored.version})")
    out.line(COLD_START_NOTE)


@app.command("remove")
def remove(name: Name, project: ProjectDir = Path(), stage: StageOption = None) -> None:
    """Delete a setting."""
    out = Output()
    target = load_target(project, stage)
    Environment(target).remove(name)
    out.success(f"{name} removed from stage {target.stage}")
    out.line(COLD_START_NOTE)
