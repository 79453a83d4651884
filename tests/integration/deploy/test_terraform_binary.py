"""Finding and checking the terraform binary; failures Terraform reports, explained."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from qr.cli.console import Output
from qr.cli.deploy.terraform import (
    Diagnostic,
    Terraform,
    TerraformBinary,
    explain_failure,
    find_terraform,
)
from qr.cli.errors import QrError

pytestmark = pytest.mark.integration


def fake_binary(directory: Path, name: str, prints: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{prints}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_the_real_binary_is_found_and_recent(terraform_binary: TerraformBinary) -> None:
    assert terraform_binary.version >= (1, 10, 0)
    assert os.access(terraform_binary.path, os.X_OK)


def test_qr_terraform_wins_and_tofu_is_accepted(tmp_path: Path) -> None:
    tofu = fake_binary(tmp_path, "tofu", '{"terraform_version": "1.8.2"}')
    found = find_terraform({"QR_TERRAFORM": str(tofu)}, which=lambda name: None)
    assert (found.flavor, found.version, found.path) == ("tofu", (1, 8, 2), str(tofu))
    found = find_terraform({}, which=lambda name: str(tofu) if name == "tofu" else None)
    assert found.flavor == "tofu"


@pytest.mark.parametrize(
    ("prints", "message"),
    [
        (
            '{"terraform_version": "1.5.7"}',
            "terraform 1.5.7 at .* is too old \\(qr needs >= 1.10.0\\)",
        ),
        ("Terraform v1.11.0", "is not a working terraform"),
    ],
)
def test_unusable_binaries(tmp_path: Path, prints: str, message: str) -> None:
    binary = fake_binary(tmp_path, "terraform", prints)
    with pytest.raises(QrError, match=message) as info:
        find_terraform({"TERRAFORM_BINARY": str(binary)})
    assert "QR_TERRAFORM" in info.value.hint


def test_missing_binaries(tmp_path: Path) -> None:
    with pytest.raises(QrError, match="terraform was not found on PATH") as info:
        find_terraform({}, which=lambda name: None)
    assert "Terraform >= 1.10" in info.value.hint and "qr build" in info.value.hint
    with pytest.raises(QrError, match="QR_TERRAFORM=/nowhere/terraform does not name"):
        find_terraform({"QR_TERRAFORM": "/nowhere/terraform"})


def test_provider_downloads_that_fail_are_explained(
    tmp_path: Path, terraform_binary: TerraformBinary
) -> None:
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source = "registry.invalid/hashicorp/aws"\n    }\n  }\n}\n'
    )
    terraform = Terraform(
        terraform_binary,
        tmp_path,
        data_dir=tmp_path / ".data",
        out=Output(io.StringIO(), rich=False),
        stage="production",
    )
    with pytest.raises(QrError) as info:
        terraform.init()
    assert info.value.message == (
        "terraform init for stage 'production' could not download the providers it needs"
    )
    assert "TF_PLUGIN_CACHE_DIR" in info.value.hint


def diagnostic(summary: str, detail: str = "") -> Diagnostic:
    return Diagnostic("error", summary, detail, "main.tf:3")


@pytest.mark.parametrize(
    ("summary", "detail", "message"),
    [
        (
            "No valid credential sources found",
            "Please see https://registry.terraform.io/providers/hashicorp/aws",
            "found no usable AWS credentials",
        ),
        (
            "validating provider credentials: retrieving caller identity from STS",
            "api error InvalidClientTokenId: The security token included in the request is invalid.",
            "found no usable AWS credentials",
        ),
        ("invalid AWS Region: us-east-9", "", "was given an AWS region that does not exist"),
        (
            "Error acquiring the state lock",
            "Lock Info:\n  ID:        6d3c6f0e-49b5-5c4a-b3b9-0d6a5c0e8f11\n  Path: x",
            "is locked by another run",
        ),
    ],
)
def test_provider_errors_are_explained(summary: str, detail: str, message: str) -> None:
    error = explain_failure(
        "apply", [diagnostic(summary, detail)], "", chdir="terraform -chdir=x", stage="prod"
    )
    assert message in error.message
    if "locked" in message:
        assert "force-unlock 6d3c6f0e-49b5-5c4a-b3b9-0d6a5c0e8f11" in error.hint


def test_other_errors_show_terraforms_words_and_where() -> None:
    error = explain_failure(
        "plan",
        [diagnostic("Unsupported argument", 'An argument named "bogus" is not expected here.')],
        "Warning: Unable to open CLI configuration file\n",
        chdir="terraform -chdir=/p/.qr/build/prod/terraform",
    )
    assert error.message == "terraform plan failed"
    assert error.hint.startswith("main.tf:3: Unsupported argument\nAn argument named")
    assert "terraform -chdir=/p/.qr/build/prod/terraform plan" in error.hint
    plain = explain_failure(
        "output", [], "Warning: Unable to open CLI configuration file\nboom\n", chdir="t"
    )
    assert plain.hint.startswith("boom\n")
