"""The rendered Terraform of fixed projects, kept as golden files: a diff of
``tests/fixtures/terraform_golden/`` shows what a change to the model or templates does.

Regenerate after an intended change with ``scripts/update-terraform-golden`` (which runs this
test with ``QR_UPDATE_GOLDEN=1``), then review the diff like any other code.
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from tests import terraform_projects

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "terraform_golden"
PROJECTS = {
    # name: (project directory, stage)
    "examples-bookmarks": (terraform_projects.EXAMPLES / "bookmarks", "production"),
    "bookmarks-production": (FIXTURES / "golden_project", "production"),
    "bookmarks-staging": (FIXTURES / "golden_project", "staging"),
}


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_rendered_terraform_matches_golden_files(name: str, tmp_path: Path) -> None:
    source, stage = PROJECTS[name]
    project = tmp_path / "project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns(".qr"))
    out = terraform_projects.render(project, stage, tmp_path / "out")
    golden = GOLDEN / name
    if os.environ.get("QR_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden)
    rendered = {p.name: p.read_text() for p in sorted(out.glob("*.tf"))}
    expected = {p.name: p.read_text() for p in sorted(golden.glob("*.tf"))}
    diff: list[str] = []
    for file in sorted(set(rendered) | set(expected)):
        diff += difflib.unified_diff(
            expected.get(file, "").splitlines(keepends=True),
            rendered.get(file, "").splitlines(keepends=True),
            f"golden/{file}",
            f"rendered/{file}",
        )
    assert not diff, (
        "the rendered Terraform differs from tests/fixtures/terraform_golden/"
        f"{name}; if the change is intended run scripts/update-terraform-golden\n" + "".join(diff)
    )
