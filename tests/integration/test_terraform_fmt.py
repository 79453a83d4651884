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


def test_variable_validation_blocks_refuse_bad_values(tmp_path: Path) -> None:
    """The rendered variables.tf, run by the real terraform (no provider needed for variables):
    a region that is not a region name and a retention CloudWatch Logs refuses fail at plan."""
    out = terraform_projects.render(terraform_projects.make(tmp_path, "scaffold"))
    module = tmp_path / "variables-only"
    module.mkdir()
    shutil.copy(out / "variables.tf", module / "variables.tf")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [terraform(), f"-chdir={module}", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert run("init", "-input=false", "-no-color").returncode == 0
    assert run("plan", "-input=false", "-no-color").returncode == 0
    bad_retention = run("plan", "-input=false", "-no-color", "-var", "log_retention_days=2")
    assert bad_retention.returncode != 0
    assert "The retention must be one CloudWatch Logs accepts: 1, 3, 5, 7," in bad_retention.stderr
    bad_region = run("plan", "-input=false", "-no-color", "-var", "region=US East")
    assert bad_region.returncode != 0
    assert "The region must be an AWS region name" in bad_region.stderr
