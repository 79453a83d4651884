"""qr deploy / rollback / destroy as a newcomer types them, against moto and real terraform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qr.cli.deploy.aws import Aws
from tests.integration.deploy.conftest import (
    alias_version,
    create_function,
    interrupt_qr,
    publish_versions,
    run_qr,
    stub_terraform,
)

pytestmark = pytest.mark.integration


def test_deploy_rollback_destroy_from_a_scratch_project(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo
    create_function(aws)
    build = root / ".qr" / "build" / "production" / "terraform"
    stub_terraform(build, code="v2")

    code, out, err = run_qr(capsys, "deploy", "-C", str(root))
    assert code == 1
    assert "no terminal" in err and "--yes" in err

    code, out, err = run_qr(capsys, "deploy", "--plan", "--no-build", "-C", str(root))
    assert code == 0, err
    assert "Plan: 2 to add" in out
    assert alias_version(aws) == "1"

    code, out, err = run_qr(capsys, "deploy", "--yes", "--no-build", "-C", str(root))
    assert code == 0, err
    assert "version 1 → 2" in out
    assert "\x1b[" not in out
    stub_terraform(build, code="v3")
    code, out, err = run_qr(capsys, "deploy", "--yes", "--no-build", "-C", str(root))
    assert code == 0, err
    assert "version 2 → 3" in out
    assert alias_version(aws) == "3"

    code, out, err = run_qr(capsys, "rollback", "--yes", "-C", str(root))
    assert code == 0, err
    assert "moved from version 3 to 2" in out
    assert "queues, schedules" in out
    assert "← current" in out  # the listing marks the current version
    assert alias_version(aws) == "2"

    code, out, err = run_qr(capsys, "rollback", "9", "--yes", "-C", str(root))
    assert code == 1
    assert "version '9' of app-production does not exist" in err
    assert "3, 2, 1" in err
    assert alias_version(aws) == "2"

    code, out, err = run_qr(capsys, "rollback", "3", "--yes", "-C", str(root))
    assert code == 0, err
    assert alias_version(aws) == "3"
    log = json.loads((root / ".qr" / "deployments.json").read_text())
    assert [d["kind"] for d in log["deployments"]] == ["deploy", "deploy", "rollback", "rollback"]

    code, out, err = run_qr(capsys, "destroy", "--no-build", "-C", str(root))
    assert code == 1
    assert "stage name typed back" in err
    code, out, err = run_qr(capsys, "destroy", "--yes", "--no-build", "-C", str(root))
    assert code == 0, err
    assert "stage production destroyed (2 resources)" in out
    state = json.loads((root / ".qr" / "state" / "production" / "terraform.tfstate").read_text())
    assert state["resources"] == []


def test_rollback_needs_a_deployed_stage(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo
    code, _, err = run_qr(capsys, "rollback", "--yes", "-C", str(root))
    assert code == 1
    assert "function app-production does not exist" in err
    assert "qr deploy" in err

    create_function(aws)
    code, _, err = run_qr(capsys, "rollback", "--yes", "-C", str(root))
    assert code == 1
    assert "no version before 1" in err

    publish_versions(aws, "app-production", 2)
    code, _out, err = run_qr(
        capsys, "rollback", "2", "--yes", "--stage", "production", "-C", str(root)
    )
    assert code == 0, err
    assert alias_version(aws) == "2"


def test_unknown_stage_is_a_project_error(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo
    code, _, err = run_qr(capsys, "deploy", "--stage", "prod", "--yes", "-C", str(root))
    assert code == 1
    assert "stage 'prod' is not defined" in err


def test_ctrl_c_is_passed_to_terraform_which_stops_cleanly(
    demo: Path, aws: Aws, aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo
    create_function(aws)
    stub_terraform(root / ".qr" / "build" / "production" / "terraform", code="v2", sleep=120)
    code, out, err = interrupt_qr(
        ["deploy", "--yes", "--no-build", "-C", str(root)],
        until=lambda line: "creating terraform_data.function" in line,
        what="terraform creating the function",
    )
    assert code == 130, out + err
    assert "asking terraform to stop" in out
    assert "interrupted and stopped cleanly" in err
    assert "alias 'current' was not moved" in err
    state = json.loads((root / ".qr" / "state" / "production" / "terraform.tfstate").read_text())
    assert {r["name"] for r in state["resources"]} <= {"queue", "function"}
    assert alias_version(aws) == "1"
