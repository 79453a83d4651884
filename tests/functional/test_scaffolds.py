"""Every scaffold is a tested program: render it and run its own tests, as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from qr.cli import scaffold
from qr.runtime.manifest import scan
from tests.projects import run_project_tests


@pytest.mark.parametrize("template", sorted(scaffold.templates()))
def test_scaffold_tests_pass(template: str, tmp_path: Path) -> None:
    root = tmp_path / "app"
    scaffold.render(root, template, scaffold.Answers(name="app"))
    manifest = scan(root)
    assert manifest.routes and manifest.queues and manifest.schedules and manifest.socket
    result = run_project_tests(root, tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_scaffold_tests_pass_inside_another_pytest_project(tmp_path: Path) -> None:
    """The README's first command scaffolds ``demo`` inside qr's own checkout: the parent's
    pytest settings (testpaths, plugins' options) must not apply to the project's tests."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = ["--strict-config"]\nno_such_option = 5\n'
    )
    root = tmp_path / "demo"
    scaffold.render(root, "default", scaffold.Answers(name="demo"))
    result = run_project_tests(root, tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_default_template_renders_variables(tmp_path: Path) -> None:
    files = scaffold.plan(
        "default", scaffold.Answers(name="shop", region="eu-west-1", runtime="python3.13")
    )
    assert "name: shop" in files["qr.yaml"]
    assert "region: eu-west-1" in files["qr.yaml"]
    assert "runtime: python3.13" in files["qr.yaml"]
    assert ".gitignore" in files and ".env" in files[".gitignore"]
    assert not any(
        name.endswith(".j2") or "/dot-" in name or name.startswith("dot-") for name in files
    )
