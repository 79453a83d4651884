"""qr deploy with the real terraform binary on stub stages and Lambda in a moto server."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws
from qr.cli.deploy.pipeline import Deployer
from qr.cli.deploy.terraform import Terraform, TerraformBinary
from qr.cli.deploy.versions import DeploymentLog, parse_description
from qr.cli.errors import QrError
from tests.integration.deploy.conftest import (
    StubBuild,
    alias_version,
    create_function,
    stub_terraform,
)
from tests.waiting import Lines, exited, reaped

pytestmark = pytest.mark.integration


class Make(Protocol):
    def __call__(
        self,
        build: StubBuild | None = None,
        *,
        aws: Aws | None = None,
        stream: io.StringIO | None = None,
        **options: Any,
    ) -> Deployer: ...


@pytest.fixture
def make(
    project: Path,
    aws: Aws,
    stub_build: Callable[..., StubBuild],
    terraform_binary: TerraformBinary,
) -> Make:
    """A Deployer for ``project`` with the real terraform, moto and the stub stage by default."""
    default_aws = aws

    def factory(
        build: StubBuild | None = None,
        *,
        aws: Aws | None = None,
        stream: io.StringIO | None = None,
        **options: Any,
    ) -> Deployer:
        return Deployer(
            project,
            None,
            out=Output(stream or io.StringIO(), rich=False),
            aws=aws or default_aws,
            build=build or stub_build(),
            terraform=terraform_binary,
            **options,
        )

    return factory


def test_deploy_applies_then_moves_the_alias(
    project: Path, aws: Aws, make: Make, stub_build: Callable[..., StubBuild]
) -> None:
    create_function(aws)
    stream = io.StringIO()
    result = make(stub_build(code="v2"), stream=stream).deploy(yes=True)
    text = stream.getvalue()
    assert result.applied
    assert result.plan.add == 2
    assert (result.previous, result.version) == ("1", "2")
    assert alias_version(aws) == "2"
    assert "+ terraform_data.function (create)" in text
    assert "creating terraform_data.function ..." in text
    assert "created terraform_data.function (" in text
    assert "deployed: app-production:current = version 1 → 2" in text
    assert "https://abc123.execute-api.us-east-1.amazonaws.com/" in text
    records = DeploymentLog(project).records("production")
    assert [(r.kind, r.version, r.previous) for r in records] == [("deploy", "2", "1")]
    assert records[0].outputs["http_url"].startswith("https://abc123")
    assert records[0].user
    assert (project / ".qr" / "state" / "production" / "terraform.tfstate").exists()
    published = aws.client("lambda").get_function_configuration(
        FunctionName="app-production", Qualifier="2"
    )
    record = parse_description(published["Description"])
    # moto keeps no description on published versions; real Lambda does
    assert record is None or record["time"] == records[0].time

    # a second deploy with the same code changes nothing and confirms the version
    stream = io.StringIO()
    again = make(stub_build(code="v2"), stream=stream).deploy(yes=True)
    assert not again.applied
    assert "No changes." in stream.getvalue()
    assert (again.previous, again.version) == ("2", "2")
    assert "version 2 (unchanged)" in stream.getvalue()


def test_a_failed_apply_leaves_the_alias_where_it_was(
    project: Path, aws: Aws, make: Make, stub_build: Callable[..., StubBuild]
) -> None:
    create_function(aws)
    stream = io.StringIO()
    with pytest.raises(QrError) as info:
        make(stub_build(code="v2", fail=True), stream=stream).deploy(yes=True)
    assert info.value.message == "terraform apply for stage 'production' failed"
    assert "local-exec provisioner error" in info.value.hint
    assert "main.tf:" in info.value.hint  # where in the rendered configuration
    assert "alias 'current' was not moved" in info.value.hint
    assert "FAILED creating terraform_data.function" in stream.getvalue()
    assert alias_version(aws) == "1"
    assert DeploymentLog(project).records() == []


def test_plan_stops_before_applying(project: Path, aws: Aws, make: Make) -> None:
    create_function(aws)
    stream = io.StringIO()
    result = make(stream=stream).deploy(plan_only=True)
    assert not result.applied
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in stream.getvalue()
    assert alias_version(aws) == "1"
    assert not (project / ".qr" / "state" / "production" / "terraform.tfstate").exists()


def test_confirmation_is_asked_and_a_no_changes_nothing(aws: Aws, make: Make) -> None:
    create_function(aws)
    asked: list[str] = []

    def confirm(prompt: str) -> bool:
        asked.append(prompt)
        return False

    with pytest.raises(QrError, match="deploy cancelled"):
        make(confirm=confirm, interactive=True).deploy()
    assert asked == ["Apply these changes to stage production?"]
    assert alias_version(aws) == "1"


def test_without_a_terminal_yes_is_required(make: Make) -> None:
    with pytest.raises(QrError) as info:
        make(interactive=False).deploy()
    assert "no terminal" in info.value.message
    assert "--yes" in info.value.hint


def test_missing_credentials_are_reported_before_terraform_runs(
    project: Path, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(QrError) as info:
        make(aws=Aws("us-east-1")).deploy(yes=True)
    assert info.value.message == "no AWS credentials found"
    assert "AWS_PROFILE" in info.value.hint
    assert not (project / ".qr" / "build").exists()


def test_a_region_that_does_not_exist(project: Path, make: Make) -> None:
    (project / "qr.yaml").write_text("name: app\nregion: us-east-9\n")
    with pytest.raises(QrError) as info:
        make(aws=Aws("us-east-9")).deploy(yes=True)
    assert info.value.message == "AWS region 'us-east-9' does not exist"
    assert "qr.yaml" in info.value.hint


def test_missing_outputs_are_explained(make: Make) -> None:
    def build(root: Path, stage: str) -> Path:
        directory = root / ".qr" / "build" / stage / "terraform"
        directory.mkdir(parents=True)
        (directory / "main.tf").write_text('output "http_url" {\n  value = "x"\n}\n')
        return directory

    with pytest.raises(QrError, match="no 'function_name'"):
        make(build).deploy(yes=True)


def test_a_locked_state_names_the_lock_and_the_fix(
    project: Path, aws: Aws, make: Make, terraform_binary: TerraformBinary
) -> None:
    create_function(aws)
    first = make()
    first.deploy(plan_only=True)  # init + backend override in place
    directory = project / ".qr" / "build" / "production" / "terraform"
    stub_terraform(directory, code="v3", sleep=60)
    holder = subprocess.Popen(
        [terraform_binary.path, "apply", "-auto-approve", "-input=false", "-json"],
        cwd=directory,
        env={**first.env, "TF_DATA_DIR": str(first.work_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    with reaped(holder, group=True):
        assert holder.stdout is not None
        Lines(holder.stdout, "first apply's output").wait_for(
            lambda line: '"provision_start"' in line, "the provisioner (the lock is then held)"
        )
        second = make(lambda root, stage: directory)
        with pytest.raises(QrError) as info:
            second.deploy(yes=True)
        holder.send_signal(signal.SIGINT)
        exited(holder, "the first apply after Ctrl+C")
    assert (
        info.value.message == "the Terraform state for stage 'production' is locked by another run"
    )
    assert "force-unlock" in info.value.hint
    assert alias_version(aws) == "1"


def test_rich_progress_shows_each_resource(
    tmp_path: Path, terraform_binary: TerraformBinary, aws_env: dict[str, str]
) -> None:
    directory = tmp_path / "tf"
    directory.mkdir()
    (directory / "main.tf").write_text(
        'resource "terraform_data" "one" {\n  input = 1\n}\n'
        'resource "terraform_data" "two" {\n  input = 2\n}\n'
    )
    stream = io.StringIO()
    terraform = Terraform(
        terraform_binary,
        directory,
        data_dir=tmp_path / "data",
        out=Output(stream, rich=True),
        env=dict(aws_env, PATH="/usr/bin:/bin"),
    )
    terraform.init()
    summary = terraform.plan(tmp_path / "plan")
    assert sorted(c.address for c in summary.changes) == [
        "terraform_data.one",
        "terraform_data.two",
    ]
    terraform.apply(tmp_path / "plan")
    text = stream.getvalue()
    assert "✓" in text
    assert "terraform_data.one" in text and "terraform_data.two" in text
    assert "created" in text
    assert terraform.output() == {}
    state = json.loads((directory / "terraform.tfstate").read_text())
    assert len(state["resources"]) == 2
