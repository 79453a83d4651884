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


def test_env_assignments() -> None:
    assert parse_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(QrError, match="is not KEY=VALUE"):
        parse_assignments(["nope"])
