from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qr.cli.console import Output
from qr.cli.deploy import domain
from qr.cli.deploy.aws import Aws
from qr.cli.deploy.pipeline import Deployer
from qr.cli.options import Json, ProjectDir, StageOption, Yes
from qr.cli.project import find_root
from qr.runtime.config import load_config

app = typer.Typer(
    help="Custom domains: ACM certificate, API Gateway domain names (HTTP and ws.), DNS records.",
    no_args_is_help=True,
)
NoApply = Annotated[
    bool, typer.Option("--no-apply", help="Only change qr.yaml; deploy later with qr deploy.")
]


def _deploy(root: Path, stage: str, out: Output, yes: bool) -> dict[str, Any]:
    return Deployer(root, stage, out=out).deploy(yes=yes).outputs


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="e.g. api.example.com")],
    zone: Annotated[
        str | None,
        typer.Option("--zone", help="Route53 hosted zone id: Terraform creates the records."),
    ] = None,
    project: ProjectDir = Path(),
    stage: StageOption = None,
    no_apply: NoApply = False,
    yes: Yes = False,
    timeout: Annotated[
        int, typer.Option("--timeout", help="Minutes to wait for the certificate.")
    ] = 30,
) -> None:
    """Serve the stage on DOMAIN (and its WebSocket API on ws.DOMAIN)."""
    out = Output()
    root = find_root(project)
    config = load_config(root)
    stage_name = config.stage(stage).name
    aws = Aws(config.region)
    domain.add(
        root,
        stage_name,
        name,
        zone=zone,
        aws=aws,
        out=out,
        deploy=None if no_apply else lambda: _deploy(root, stage_name, out, yes),
        waiter=domain.Waiter(aws, out, timeout=timeout * 60),
    )


@app.command("remove")
def remove(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    no_apply: NoApply = False,
    yes: Yes = False,
) -> None:
    """Stop serving the stage on its custom domain."""
    out = Output()
    root = find_root(project)
    stage_name = load_config(root).stage(stage).name
    domain.remove(
        root,
        stage_name,
        out=out,
        deploy=None if no_apply else lambda: _deploy(root, stage_name, out, yes),
    )


@app.command("list")
def list_(project: ProjectDir = Path(), json: Json = False) -> None:
    """Each stage's domain with its certificate and API Gateway status."""
    out = Output()
    root = find_root(project)
    rows = domain.list_domains(root, Aws(load_config(root).region))
    if json:
        out.json(rows)
    else:
        domain.show_list(rows, out)
