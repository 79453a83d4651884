from __future__ import annotations

from pathlib import Path

from qr.cli.console import Output
from qr.cli.options import Json, ProjectDir
from qr.cli.project import load_manifest
from qr.cli.routes_table import print_routes, routes_data


def command(project: ProjectDir = Path(), json: Json = False) -> None:
    """Show the handler table: routes, queues, socket handlers and schedules."""
    manifest = load_manifest(project)
    out = Output()
    if json:
        out.json(routes_data(manifest))
    else:
        print_routes(out, manifest)
