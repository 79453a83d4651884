"""``qr build``: manifest, bundle and Terraform in .qr/build/<stage>/, and the summary."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from qr.cli.build import build
from qr.cli.bundle import Bundle
from qr.cli.main import main
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import Manifest
from tests import terraform_lint
from tests.conftest import MakeProject

PROJECT = {
    "qr.yaml": "name: shop\nstages:\n  production: {}\n  staging: {memory: 256}\n",
    "api/index.py": "def get():\n    return {'ok': True}\n",
    "queues/emails.py": "def handler(payload, job):\n    return None\n",
}


def small_bundle(manifest: Manifest, stage: str, directory: Path) -> Bundle:
    """A stand-in for the real bundle step (tested in test_bundle): one file, zipped."""
    path = directory / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("qr.yaml", (manifest.root / "qr.yaml").read_text())
    size = path.stat().st_size
    return Bundle(path, "0" * 64, size, 10, (), "arm64", "3.12", (), False, False)


def test_build_writes_everything(make_project: MakeProject) -> None:
    root = make_project(PROJECT)
    result = build(root, "staging", bundle=small_bundle)
    directory = root / ".qr" / "build" / "staging"
    assert result.directory == directory
    assert (directory / "bundle.zip").is_file()
    # The Terraform's ${path.module}/../bundle.zip is the zip the bundle step wrote.
    assert (result.terraform_dir / ".." / "bundle.zip").resolve() == (directory / "bundle.zip")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert [q["name"] for q in manifest["queues"]] == ["emails"]
    assert {p.name for p in result.terraform_files} == {
        p.name for p in (directory / "terraform").glob("*.tf")
    }
    assert terraform_lint.lint(result.terraform_dir) == []
    parsed = terraform_lint.parse_dir(result.terraform_dir)
    declared = sum(
        len(labels)
        for tree in parsed.values()
        for item in tree.get("resource", [])
        for labels in item.values()
    )
    assert result.resource_count == declared
    assert result.resources["aws_sqs_queue"] == 2
    assert result.data_sources["aws_iam_policy_document"] == 2
    assert result.model.function.memory == 256
    assert result.to_dict()["bundle"]["path"] == str(directory / "bundle.zip")


def test_rebuild_removes_stale_files_and_keeps_others(make_project: MakeProject) -> None:
    root = make_project(PROJECT)
    result = build(root, bundle=None)
    assert (result.terraform_dir / "queues.tf").exists()
    (result.terraform_dir / ".terraform.lock.hcl").write_text("# kept\n")
    (root / "queues" / "emails.py").unlink()
    result = build(root, bundle=None)
    assert not (result.terraform_dir / "queues.tf").exists()
    assert (result.terraform_dir / ".terraform.lock.hcl").exists()
    assert result.bundle is None


def test_model_problems_stop_before_the_bundle(make_project: MakeProject) -> None:
    root = make_project({**PROJECT, "queues/emails-dlq.py": "def handler(payload):\n    pass\n"})
    calls: list[str] = []

    def bundle(manifest: Manifest, stage: str, directory: Path) -> Bundle:
        calls.append(stage)
        return small_bundle(manifest, stage, directory)

    with pytest.raises(ProjectError):
        build(root, bundle=bundle)
    assert calls == []


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_cli_summary_and_json(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(PROJECT)
    code, out, err = run(capsys, "build", "--project", str(root), "--no-bundle")
    assert code == 0, err
    assert "built shop (stage production)" in out
    assert "aws_lambda_function" in out and "aws_sqs_queue" in out
    assert "not built (--no-bundle)" in out
    assert "Next: qr deploy --stage production" in out
    code, out, err = run(
        capsys, "build", "-C", str(root), "--no-bundle", "--stage", "staging", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["stage"] == "staging"
    assert data["terraform"]["resources"]["aws_lambda_alias"] == 1
    assert data["bundle"] is None


def test_cli_unknown_stage(make_project: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(PROJECT)
    code, _, err = run(capsys, "build", "-C", str(root), "--stage", "prod", "--no-bundle")
    assert code == 1
    assert "stage 'prod' is not defined" in err


def test_cli_list_shows_what_ships_and_what_is_skipped(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        {
            **PROJECT,
            ".gitignore": "secrets.json\n",
            "secrets.json": "{}",
            "id_rsa": "key",
            "tests/test_app.py": "",
            "pytest.ini": "[pytest]\n",
            "conftest.py": "",
        }
    )
    code, out, err = run(capsys, "build", "-C", str(root), "--list")
    assert code == 0, err
    assert "  api/index.py\n" in out
    assert "secrets.json  ignored by .gitignore (secrets.json)" in out
    assert "id_rsa" in out and "looks like a secret (id_rsa*)" in out
    assert not (root / ".qr" / "build").exists()  # --list builds nothing
    code, out, err = run(capsys, "build", "-C", str(root), "--list", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["included"] == ["api/index.py", "qr.yaml", "queues/emails.py"]
    assert {s["path"]: s["reason"] for s in data["skipped"]}["tests/"].startswith("your tests")
    assert {s["path"] for s in data["skipped"]} >= {"pytest.ini", "conftest.py"}
    (root / "leak").symlink_to("/etc/hostname")
    code, _, err = run(capsys, "build", "-C", str(root), "--list")
    assert code == 1
    assert "leak is a symbolic link to /etc/hostname, outside the project" in err
