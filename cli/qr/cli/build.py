"""``qr build``: everything a deploy needs, in ``.qr/build/<stage>/``, without touching AWS.

``build(root, stage)`` runs, in order:

1. scan the project (``qr.runtime.manifest.scan``) and resolve the stage;
2. build and check the Terraform model (``qr.cli.terraform``): a broken AWS rule stops the build
   here, before the slow bundle step, with the file to change;
3. write ``manifest.json`` (``Manifest.to_dict()``);
4. build ``bundle.zip`` (``qr.cli.bundle.build_bundle``; skipped with ``bundle=None``);
5. render ``terraform/*.tf``, which reference the zip as ``${path.module}/../bundle.zip``.

The result says what was written and counts the resources by type, for the summary ``qr build``
prints and for ``qr deploy``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qr.cli.bundle import Bundle, build_bundle
from qr.cli.project import build_dir
from qr.cli.terraform import TerraformModel, terraform_model, write
from qr.runtime.local.private import private_dir
from qr.runtime.manifest import Manifest, scan

BundleStep = Callable[[Manifest, str, Path], Bundle]
"""``(manifest, stage, build directory) -> Bundle`` writing ``<build directory>/bundle.zip``."""

MANIFEST_FILE = "manifest.json"
TERRAFORM_DIR = "terraform"
_BLOCK = re.compile(r'^(resource|data) "(\w+)" "', re.MULTILINE)


@dataclass(frozen=True)
class BuildResult:
    project: str
    stage: str
    directory: Path
    """``.qr/build/<stage>``."""
    manifest_file: Path
    terraform_dir: Path
    terraform_files: tuple[Path, ...]
    resources: Mapping[str, int]
    """Resource type -> how many the rendered Terraform declares."""
    data_sources: Mapping[str, int]
    bundle: Bundle | None
    model: TerraformModel

    @property
    def resource_count(self) -> int:
        return sum(self.resources.values())

    def to_dict(self) -> dict[str, Any]:
        bundle = self.bundle
        return {
            "project": self.project,
            "stage": self.stage,
            "directory": str(self.directory),
            "manifest": str(self.manifest_file),
            "terraform": {
                "directory": str(self.terraform_dir),
                "files": [p.name for p in self.terraform_files],
                "resources": dict(self.resources),
                "data_sources": dict(self.data_sources),
            },
            "bundle": None
            if bundle is None
            else {
                "path": str(bundle.path),
                "size": bundle.size,
                "unzipped": bundle.unzipped,
                "sha256": bundle.sha256,
            },
            "function": {
                "name": self.model.function.name,
                "timeout": self.model.function.timeout,
                "memory": self.model.function.memory,
            },
        }


def build(
    root: Path,
    stage: str | None = None,
    *,
    bundle: BundleStep | None = build_bundle,
) -> BuildResult:
    """Build ``stage`` (default ``production``) of the project at ``root``; see the docstring."""
    manifest = scan(root)
    stage_name = manifest.config.stage(stage).name
    model = terraform_model(manifest, stage_name)
    directory = private_dir(build_dir(manifest.root, stage_name))  # .qr/build/<stage>: 0700
    manifest_file = directory / MANIFEST_FILE
    manifest_file.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    built = bundle(manifest, stage_name, directory) if bundle is not None else None
    terraform_dir = directory / TERRAFORM_DIR
    written = write(model, terraform_dir)
    counts: dict[str, Counter[str]] = {"resource": Counter(), "data": Counter()}
    for path in written.values():
        for kind, type_name in _BLOCK.findall(path.read_text(encoding="utf-8")):
            counts[kind][type_name] += 1
    return BuildResult(
        project=manifest.config.name,
        stage=stage_name,
        directory=directory,
        manifest_file=manifest_file,
        terraform_dir=terraform_dir,
        terraform_files=tuple(written.values()),
        resources=dict(sorted(counts["resource"].items())),
        data_sources=dict(sorted(counts["data"].items())),
        bundle=built,
        model=model,
    )
