"""Options shared by several commands (same flag name, keyword argument and config field)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectDir = Annotated[
    Path,
    typer.Option(
        "--project",
        "-C",
        help="The project directory (default: the current directory).",
        file_okay=False,
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
StageOption = Annotated[
    str | None, typer.Option("--stage", "-s", help="Stage from qr.yaml (default: production).")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
NoBuild = Annotated[
    bool, typer.Option("--no-build", help="Use .qr/build/<stage>/ as it is (from qr build).")
]
