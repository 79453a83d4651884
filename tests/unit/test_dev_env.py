"""``qr dev``'s environment precedence: --env > shell > .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from qr.cli.dev.env import DevEnvironment, parse_assignments
from qr.cli.errors import QrError


def test_precedence_and_reapplying_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=file\nB=file\nC=file\n# comment\nD='quoted value'\n")
    environ = {"B": "shell", "C": "shell"}
    env = DevEnvironment(tmp_path, {"C": "flag"}, environ)
    env.apply()
    assert environ == {"A": "file", "B": "shell", "C": "flag", "D": "quoted value"}
    (tmp_path / ".env").write_text("A=changed\nE=new\n")
    assert sorted(env.apply()) == ["A", "D", "E"]
    assert environ == {"A": "changed", "B": "shell", "C": "flag", "E": "new"}


def test_project_values_are_the_projects_keys_with_the_values_that_won(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=file\nB=file\n")
    environ = {"B": "shell", "PATH": "/usr/bin"}
    env = DevEnvironment(tmp_path, {"C": "flag"}, environ)
    env.apply()
    # B is the project's (it is in .env) with the shell's value; PATH is not the project's
    assert env.project_values() == {"A": "file", "B": "shell", "C": "flag"}
    (tmp_path / ".env").write_text("B=file\n")
    env.apply()
    assert env.project_values() == {"B": "shell", "C": "flag"}


def test_env_assignments() -> None:
    assert parse_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(QrError, match="is not KEY=VALUE"):
        parse_assignments(["nope"])
