from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from qr.cli import project_files
from qr.cli.build import BuildResult, build
from qr.cli.console import Output
from qr.cli.options import Json, ProjectDir, StageOption
from qr.cli.project import find_root


def command(
    project: ProjectDir = Path(),
    stage: StageOption = None,
    json: Json = False,
    no_bundle: Annotated[
        bool,
        typer.Option("--no-bundle", help="Write the manifest and Terraform only (no bundle.zip)."),
    ] = False,
    list_files: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List the project files the bundle would ship and those it skips (and why); "
            "builds nothing.",
        ),
    ] = False,
) -> None:
    """Build the bundle and the Terraform into .qr/build/<stage>/ without touching AWS."""
    root = find_root(project)
    if list_files:
        listing(Output(), project_files.select(root), json=json)
        return
    result = build(root, stage, bundle=None) if no_bundle else build(root, stage)
    out = Output()
    if json:
        out.json(result.to_dict())
    else:
        summary(out, result, Path.cwd())


def listing(out: Output, files: project_files.ProjectFiles, *, json: bool) -> None:
    """``qr build --list``: the project's side of the bundle (qr adds its runtime and the
    dependencies from requirements.txt / pyproject.toml)."""
    if json:
        out.json(
            {
                "included": sorted(files.included),
                "skipped": [{"path": s.path, "reason": s.reason} for s in files.skipped],
            }
        )
        return
    out.line(f"Ships ({len(files.included)} files of your project):")
    for name in sorted(files.included):
        out.line(f"  {name}")
    out.line(f"Skipped ({len(files.skipped)}):")
    width = max((len(s.path) for s in files.skipped), default=0)
    for skipped in files.skipped:
        out.line(f"  {skipped.path:<{width}}  {skipped.reason}")
    out.line(
        "qr adds its runtime (qr/runtime) and your dependencies (requirements.txt or "
        "pyproject.toml) when it builds."
    )


def summary(out: Output, result: BuildResult, cwd: Path) -> None:
    where = _relative(result.directory, cwd)
    out.success(f"built {result.project} (stage {result.stage}) in {where}")
    if result.bundle is not None:
        bundle = result.bundle
        out.line(
            f"  bundle.zip      {bundle.size / 1e6:.1f} MB zipped, {bundle.unzipped / 1e6:.1f} MB "
            f"unzipped, sha256 {bundle.sha256[:12]}"
        )
    else:
        out.line("  bundle.zip      not built (--no-bundle)")
    out.line("  manifest.json")
    out.line(
        f"  terraform/      {len(result.terraform_files)} files, {result.resource_count} resources"
    )
    function = result.model.function
    out.line(
        f"  function        {function.name}: {function.runtime} {function.architecture}, "
        f"{function.memory} MB, timeout {function.timeout}s"
    )
    rows = [[name, str(count)] for name, count in result.resources.items()]
    out.table("Resources", ["type", "count"], rows)
    out.line(f"Next: qr deploy --stage {result.stage}")


def _relative(path: Path, cwd: Path) -> str:
    try:
        return os.path.relpath(path, cwd)
    except ValueError:  # another drive (Windows)
        return str(path)
