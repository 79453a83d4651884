"""Terraform for one stage of a project: model (decisions), checks (AWS rules), render (text).

``terraform_module(manifest, stage)`` is the pipeline: build the model, check it, render it.
"""

from __future__ import annotations

from qr.cli.terraform.checks import check
from qr.cli.terraform.model import TerraformModel, build_model
from qr.cli.terraform.render import render, write
from qr.runtime.manifest import Manifest

__all__ = ["TerraformModel", "build_model", "check", "render", "terraform_model", "write"]


def terraform_model(manifest: Manifest, stage: str | None = None) -> TerraformModel:
    """The checked model of ``manifest`` for ``stage``; ``ProjectError`` lists broken rules."""
    model = build_model(manifest, stage)
    check(model, manifest.config.stage(stage))
    return model
