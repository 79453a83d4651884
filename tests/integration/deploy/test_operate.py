"""qr env and qr status from a scratch project against SSM, Lambda and SQS in a moto server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws
from qr.cli.deploy.env import Environment, fingerprint, read_value
from qr.cli.deploy.pipeline import SETTINGS_OVERRIDE, Deployer
from qr.cli.deploy.target import load_target
from qr.cli.errors import QrError
from tests.integration.deploy.conftest import create_function, publish_versions, run_qr

pytestmark = pytest.mark.integration


def test_env_set_list_get_remove(demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(demo)
    code, out, err = run_qr(capsys, "env", "set", "STRIPE_KEY", "sk_live_123", "-C", c)
    assert code == 0, err
    assert "STRIPE_KEY set for stage production" in out
    assert "next cold start" in out
    secret = demo / "key.pem"
    secret.write_text("-----BEGIN KEY-----\nabc\n")
    code, out, err = run_qr(capsys, "env", "set", "TLS_KEY", "--from-file", str(secret), "-C", c)
    assert code == 0, err
    assert run_qr(capsys, "env", "set", "OTHER", "x", "--stage", "staging", "-C", c)[0] == 0

    stored = aws.client("ssm").get_parameter(Name="/qr/app/production/STRIPE_KEY")["Parameter"]
    assert stored["Type"] == "SecureString"

    code, out, err = run_qr(capsys, "env", "list", "-C", c)
    assert code == 0, err
    assert "STRIPE_KEY" in out and "TLS_KEY" in out and "SecureString" in out
    assert "sk_live_123" not in out and "OTHER" not in out
    code, out, _ = run_qr(capsys, "env", "list", "--show", "--json", "-C", c)
    data = {p["name"]: p["value"] for p in json.loads(out)}
    assert data == {"STRIPE_KEY": "sk_live_123", "TLS_KEY": "-----BEGIN KEY-----\nabc\n"}

    code, out, _ = run_qr(capsys, "env", "get", "STRIPE_KEY", "-C", c)
    assert (code, out) == (0, "sk_live_123\n")
    assert run_qr(capsys, "env", "remove", "STRIPE_KEY", "-C", c)[0] == 0
    code, _, err = run_qr(capsys, "env", "get", "STRIPE_KEY", "-C", c)
    assert code == 1
    assert "STRIPE_KEY is not set for stage 'production'" in err and "qr env list" in err
    code, _, err = run_qr(capsys, "env", "remove", "STRIPE_KEY", "-C", c)
    assert code == 1 and "is not set" in err
    code, _, err = run_qr(capsys, "env", "set", "9LIVES", "x", "-C", c)
    assert code == 1 and "not a valid setting name" in err


def test_env_values_from_stdin(tmp_path: Path) -> None:
    class Piped(io.StringIO):
        def isatty(self) -> bool:
            return False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert read_value(None, None, Piped("s3cret\n")) == "s3cret"
    assert read_value("arg", None, Terminal()) == "arg"
    with pytest.raises(QrError, match="no value given"):
        read_value(None, None, Terminal())
    with pytest.raises(QrError, match="not both"):
        read_value("x", tmp_path / "f", Terminal())
    with pytest.raises(QrError, match="cannot read"):
        read_value(None, tmp_path / "missing", Terminal())


def test_status_of_a_stage_not_deployed_yet(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_qr(capsys, "status", "-C", str(demo))
    assert code == 0, err
    assert "not deployed: app-production does not exist" in out
    assert "cleanup" in out  # schedules are known from the project itself


def test_status_shows_versions_queues_and_schedules(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    create_function(aws)
    publish_versions(aws, "app-production", 2)  # alias stays on 1, latest is 3
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="app-production-emails-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName="app-production-emails")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"job {n}")
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=600)
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")

    code, out, err = run_qr(capsys, "status", "--json", "-C", str(demo))
    assert code == 0, err
    data = json.loads(out)
    assert data["deployed"] is True
    assert (data["current_version"], data["latest_version"], data["up_to_date"]) == (
        "1",
        "3",
        False,
    )
    assert data["queues"] == [
        {
            "name": "emails",
            "exists": True,
            "waiting": 2,
            "in_flight": 1,
            "delayed": 0,
            "dead_letters": 1,
        }
    ]
    assert data["schedules"][0]["name"] == "cleanup"
    assert data["schedules"][0]["next_run"].endswith("T03:00:00+00:00")

    code, out, err = run_qr(capsys, "status", "-C", str(demo))
    assert code == 0, err
    assert "current    version 1 (latest is 3)" in out
    assert "emails" in out and "dead letters" in out.lower()


def test_changed_settings_give_the_function_a_new_description(demo: Path, aws: Aws) -> None:
    deployer = Deployer(demo, None, out=Output(io.StringIO(), rich=False), aws=aws)
    directory = demo / ".qr" / "build" / "production" / "terraform"
    directory.mkdir(parents=True)
    override = directory / SETTINGS_OVERRIDE
    deployer._write_settings(directory)  # no function in this configuration
    assert not override.exists()

    (directory / "function.tf").write_text('resource "aws_lambda_function" "app" {\n}\n')
    deployer._write_settings(directory)  # no settings yet
    assert not override.exists()

    target = load_target(demo, None, aws)
    Environment(target).set("STRIPE_KEY", "one")
    deployer._write_settings(directory)
    first = override.read_text()
    assert 'resource "aws_lambda_function" "app" {\n  description = "qr settings ' in first
    deployer._write_settings(directory)
    assert override.read_text() == first  # unchanged settings, unchanged description
    Environment(target).set("STRIPE_KEY", "two")
    deployer._write_settings(directory)
    assert override.read_text() != first
    assert fingerprint(target) is not None


def test_destroy_wants_the_stage_name_typed_back(demo: Path, aws: Aws) -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "prod"

    deployer = Deployer(
        demo, None, out=Output(io.StringIO(), rich=False), aws=aws, ask=ask, interactive=True
    )
    with pytest.raises(QrError) as info:
        deployer.destroy()
    assert info.value.message == "destroy cancelled: 'prod' is not 'production'"
    assert "Type the stage name to confirm" in asked[0]
