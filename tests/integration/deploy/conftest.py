"""Fixtures for the deploy/operate tests: a moto server, AWS settings pointing at it, the real
terraform binary, and stub Terraform stages built from ``terraform_data`` only.

The stub stands in for the rendered AWS configuration (no AWS provider can be downloaded here):
it has the outputs ``qr deploy`` reads, and its ``local-exec`` provisioner updates the function's
code in moto the way Terraform's ``aws_lambda_function`` would, so ``qr deploy`` then publishes a
real new version.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from qr.cli.deploy.aws import Aws
from qr.cli.deploy.terraform import TerraformBinary, find_terraform
from tests.waiting import WAIT, Lines, exited, reaped, tail

REGION = "us-east-1"


@dataclass(frozen=True)
class Moto:
    url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(
    moto_server: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Dummy credentials and AWS_ENDPOINT_URL -> a freshly reset moto server."""
    moto_server.reset()
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "TF_PLUGIN_CACHE_DIR": str(tmp_path / "tf-plugins"),
        "CI": "",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


@pytest.fixture
def aws(aws_env: dict[str, str]) -> Aws:
    return Aws(REGION, boto3.Session(region_name=REGION))


@pytest.fixture(scope="session")
def terraform_binary() -> TerraformBinary:
    """The real binary; these machines have it on PATH (TESTING.md), so its absence fails."""
    return find_terraform()


def code_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", text)
    return buffer.getvalue()


def create_function(aws: Aws, name: str = "app-production", *, alias: bool = True) -> None:
    """What the first Terraform apply leaves: the function, version 1, alias current -> 1."""
    role = aws.client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    aws.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="qr.runtime.aws.entry.handler",
        Code={"ZipFile": code_zip("v1")},
        Publish=True,
    )
    if alias:
        aws.client("lambda").create_alias(FunctionName=name, Name="current", FunctionVersion="1")


def publish_versions(aws: Aws, name: str, count: int) -> None:
    for index in range(count):
        aws.client("lambda").update_function_code(
            FunctionName=name, ZipFile=code_zip(f"extra {index}")
        )
        aws.client("lambda").publish_version(FunctionName=name)


def alias_version(aws: Aws, name: str = "app-production") -> str:
    return str(aws.client("lambda").get_alias(FunctionName=name, Name="current")["FunctionVersion"])


_UPDATE_CODE = """
import io, sys, zipfile, boto3
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("app.py", sys.argv[2])
boto3.client("lambda", region_name="us-east-1").update_function_code(
    FunctionName=sys.argv[1], ZipFile=buffer.getvalue())
"""


def stub_terraform(
    directory: Path,
    *,
    function: str = "app-production",
    code: str = "v2",
    fail: bool = False,
    sleep: float = 0,
    extra_outputs: dict[str, Any] | None = None,
) -> Path:
    """Write a ``terraform_data``-only stage with the outputs of the shared contract."""
    directory.mkdir(parents=True, exist_ok=True)
    script = (directory.parent / "update_code.py").resolve()
    script.write_text(_UPDATE_CODE)
    commands = [f"{sys.executable} {script} {function} {code}"]
    if sleep:
        commands.append(f"sleep {sleep}")
    if fail:
        commands.append("echo 'simulated provider failure' >&2; exit 1")
    outputs: dict[str, Any] = {
        "function_name": function,
        "alias_name": "current",
        "http_url": "https://abc123.execute-api.us-east-1.amazonaws.com/",
        "ws_url": None,
        "log_group": f"/aws/lambda/{function}",
        "queue_urls": {},
        "dlq_urls": {},
        "dns_records": [],
    }
    outputs.update(extra_outputs or {})
    provisioners = "\n".join(
        f'  provisioner "local-exec" {{\n    command = {json.dumps(c)}\n  }}' for c in commands
    )
    rendered_outputs = "\n".join(
        f'output "{k}" {{\n  value = {_hcl_value(v)}\n}}' for k, v in outputs.items()
    )
    (directory / "main.tf").write_text(
        textwrap.dedent(
            """\
            resource "terraform_data" "function" {
              triggers_replace = [%s]
            %s
            }

            resource "terraform_data" "queue" {
              input = "emails"
            }

            %s
            """
        )
        % (json.dumps(code), provisioners, rendered_outputs)
    )
    return directory


def _hcl_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list) and not value:
        return "[]"
    return json.dumps(value)


StubBuild = Callable[[Path, str], Path]


@pytest.fixture
def stub_build() -> Callable[..., StubBuild]:
    """A build step that writes the stub stage where ``qr build`` would."""

    def factory(**options: Any) -> StubBuild:
        def build(root: Path, stage: str) -> Path:
            return stub_terraform(root / ".qr" / "build" / stage / "terraform", **options)

        return build

    return factory


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "api").mkdir(parents=True)
    (root / "qr.yaml").write_text("name: app\nregion: us-east-1\n")
    (root / "api" / "index.py").write_text("def get():\n    return {'ok': True}\n")
    return root


def run_qr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``qr ARGS`` in-process: (exit code, stdout, stderr)."""
    from qr.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([*args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


@pytest.fixture
def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A project made the way a newcomer makes one (``qr init``), with a second stage."""
    root = tmp_path / "demo"
    assert run_qr(capsys, "init", str(root), "--yes", "--name", "app")[0] == 0
    config = root / "qr.yaml"
    config.write_text(config.read_text().replace("stages:\n", "stages:\n  staging: {}\n"))
    return root


def interrupt_qr(
    args: list[str], until: Callable[[str], bool], what: str, timeout: float = WAIT
) -> tuple[int, str, str]:
    """Run ``qr ARGS`` in a child process, press Ctrl+C once ``until(line)`` is true for a line
    of its output (``what`` that line is, for the failure message; at most ``timeout`` seconds)
    and return (exit code, stdout, stderr) once it has stopped. The child never outlives the
    call."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qr.cli", *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with reaped(process):
        assert process.stdout is not None and process.stderr is not None
        out, err = Lines(process.stdout, "stdout of qr"), Lines(process.stderr, "stderr of qr")
        try:
            out.wait_for(until, what, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nits stderr:\n{tail(err.text())}") from None
        process.send_signal(signal.SIGINT)
        code = exited(process, f"qr {args[0]} after Ctrl+C", timeout)
        return code, out.rest(), err.rest()
