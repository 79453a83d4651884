from __future__ import annotations

import json
from pathlib import Path

import pytest

from qr.cli.main import main
from tests.conftest import MakeProject


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("qr 0.")


def test_init_then_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    code, out, err = run(capsys, "init", str(target), "--yes")
    assert code == 0, err
    assert "created demo" in out
    assert "qr dev" in out
    assert (target / "qr.yaml").read_text().count("name: demo") == 1
    assert (target / ".gitignore").exists()
    assert (target / ".env.example").exists()
    assert (target / "api" / "items" / "[id].py").exists()

    code, out, err = run(capsys, "routes", "--project", str(target))
    assert code == 0, err
    assert "/items/[id]" in out
    assert "emails" in out
    assert "cleanup" in out
    assert "\x1b[" not in out  # piped output is plain

    code, out, _ = run(capsys, "routes", "--json", "-C", str(target))
    data = json.loads(out)
    assert [r["path"] for r in data["routes"]] == ["/", "/_jobs/[job_id]", "/emails", "/items/[id]"]
    assert data["schedules"][0]["next_run"].endswith("T03:00:00+00:00")


def test_init_refuses_existing_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    assert run(capsys, "init", str(target), "--yes")[0] == 0
    (target / "api" / "index.py").write_text("# mine\n")
    code, _, err = run(capsys, "init", str(target), "--yes")
    assert code == 1
    assert "already a qr project" in err
    assert (target / "api" / "index.py").read_text() == "# mine\n"


def test_init_refuses_to_overwrite_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "index.py").write_text("# mine\n")
    code, _, err = run(capsys, "init", str(tmp_path), "--yes", "--name", "x")
    assert code == 1
    assert "api/index.py" in err
    assert not (tmp_path / "qr.yaml").exists()


def test_init_unknown_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", str(tmp_path / "x"), "--yes", "--template", "defualt")
    assert code == 1
    assert "no template named 'defualt'" in err
    assert "Did you mean 'default'?" in err


def test_init_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", str(tmp_path / "x"), "--yes", "--name", "Bad Name")
    assert code == 1
    assert "project name 'Bad Name' is not valid" in err


def test_routes_outside_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "routes", "-C", str(tmp_path))
    assert code == 1
    assert "no qr project" in err
    assert "qr init" in err


def test_routes_reports_every_problem(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project({"qr.yaml": "name: x\nregoin: a\n", "api/index.py": "def get(:\n"})
    code, out, err = run(capsys, "routes", "-C", str(root))
    assert code == 1
    assert out == ""
    assert "2 problems in the project" in err
    assert "qr.yaml:2: unknown key 'regoin'" in err
    assert "api/index.py:1: syntax error" in err


def test_routes_finds_project_from_subfolder(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project({"qr.yaml": "name: x\n", "api/index.py": "def get(): ...\n"})
    code, out, _ = run(capsys, "routes", "-C", str(root / "api"))
    assert code == 0
    assert "api/index.py" in out
