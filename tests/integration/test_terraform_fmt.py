"""The real ``terraform fmt -check`` leaves every rendered module unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import terraform_projects
from tests.terraform_projects import PROJECTS, STAGES

pytestmark = pytest.mark.integration


def terraform() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail("the terraform binary is not on PATH (TESTING.md: these machines have 1.11.x)")
    return binary


@pytest.mark.parametrize("project", PROJECTS)
def test_fmt_leaves_output_unchanged(project: str, tmp_path: Path) -> None:
    out = terraform_projects.render(terraform_projects.make(tmp_path, project), STAGES.get(project))
    result = subprocess.run(
        [terraform(), "fmt", "-check", "-diff", "-recursive", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_fmt_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "bad.tf").write_text("locals {\n  a = 1\n  long_name = 2\n}\n")
    result = subprocess.run(
        [terraform(), "fmt", "-check", str(tmp_path)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 3
