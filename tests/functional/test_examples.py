"""Every example is a tested program: its own tests pass, as a user would run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from qr.runtime.manifest import scan
from tests.projects import run_project_tests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_example_tests_pass(name: str, tmp_path: Path) -> None:
    root = EXAMPLES / name
    manifest = scan(root)
    assert manifest.routes
    result = run_project_tests(root, tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
