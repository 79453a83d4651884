"""``qr env``: a stage's settings and secrets in SSM Parameter Store under ``/qr/<name>/<stage>/``.

``set`` stores a SecureString (encrypted with the account's default SSM key); the function reads
every parameter under the path once per cold start (``qr.runtime.aws.ssm``), so a change reaches
new execution environments only: running ones keep the old value until Lambda replaces them, and
a ``qr deploy`` that publishes a new version starts fresh ones. ``list`` shows names, types and
change dates; values only with ``--show``.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from qr.cli.deploy.aws import aws_errors, error_code
from qr.cli.deploy.target import Target
from qr.cli.errors import QrError
from qr.runtime.config import ENV_NAME_RE

COLD_START_NOTE = (
    "Takes effect on the next cold start: new execution environments read it, running ones keep "
    "the old value. Run 'qr deploy' to start new ones now (it publishes a new version when the "
    "settings changed)."
)
MAX_VALUE = 8192
"""Bytes in an advanced-tier parameter (standard tier: 4096)."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    modified: str
    version: int
    value: str | None = None


class Environment:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.path = target.ssm_path
        self.ssm = target.aws.client("ssm")

    def list(self, *, show: bool = False) -> list[Parameter]:
        request: dict[str, Any] = {
            "Path": self.path,
            "Recursive": True,
            "WithDecryption": show,
        }
        found: list[Parameter] = []
        with aws_errors(f"listing SSM parameters under {self.path}"):
            for page in self.ssm.get_paginator("get_parameters_by_path").paginate(**request):
                for item in page.get("Parameters", []):
                    found.append(self._parameter(item, show))
        return sorted(found, key=lambda p: p.name)

    def get(self, name: str) -> Parameter:
        check_name(name)
        with aws_errors(f"reading {self.path}{name}"):
            try:
                item = self.ssm.get_parameter(Name=self.path + name, WithDecryption=True)
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    raise self._missing(name) from None
                raise
        return self._parameter(item["Parameter"], True)

    def set(self, name: str, value: str) -> Parameter:
        check_name(name)
        size = len(value.encode())
        if size > MAX_VALUE:
            raise QrError(
                f"the value of {name} is {size} bytes; SSM parameters hold at most {MAX_VALUE}",
                "Store large data elsewhere (S3) and put its location in the setting.",
            )
        tier = "Advanced" if size > 4096 else "Standard"
        with aws_errors(f"writing {self.path}{name}"):
            result = self.ssm.put_parameter(
                Name=self.path + name,
                Value=value,
                Type="SecureString",
                Overwrite=True,
                Tier=tier,
            )
        return Parameter(name, "SecureString", "", int(result.get("Version", 1)))

    def remove(self, name: str) -> None:
        check_name(name)
        with aws_errors(f"deleting {self.path}{name}"):
            try:
                self.ssm.delete_parameter(Name=self.path + name)
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    raise self._missing(name) from None
                raise

    def _missing(self, name: str) -> QrError:
        return QrError(
            f"{name} is not set for stage {self.target.stage!r} ({self.path}{name})",
            f"See what is set with: qr env list --stage {self.target.stage}",
        )

    def _parameter(self, item: dict[str, Any], show: bool) -> Parameter:
        return Parameter(
            name=str(item["Name"])[len(self.path) :],
            type=str(item.get("Type", "")),
            modified=str(item.get("LastModifiedDate", ""))[:19],
            version=int(item.get("Version", 0)),
            value=str(item.get("Value", "")) if show else None,
        )


def check_name(name: str) -> None:
    if not ENV_NAME_RE.match(name):
        raise QrError(
            f"{name!r} is not a valid setting name",
            "Use letters, digits and '_', not starting with a digit (it becomes an environment "
            "variable), e.g. STRIPE_KEY.",
        )


def read_value(value: str | None, from_file: Path | None, stdin: IO[str] | None = None) -> str:
    """The value from the argument, ``--from-file``, or piped stdin (exactly one of them)."""
    stdin = stdin or sys.stdin
    given = [value is not None, from_file is not None]
    if all(given):
        raise QrError("give the value or --from-file, not both", "qr env set NAME VALUE")
    if value is not None:
        return value
    if from_file is not None:
        try:
            return from_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise QrError(f"cannot read {from_file}: {exc.strerror}", "Check the path.") from None
    if stdin.isatty():
        raise QrError(
            "no value given",
            "Pass it as an argument (qr env set NAME VALUE), with --from-file PATH, or pipe it: "
            "echo -n VALUE | qr env set NAME",
        )
    return stdin.read().removesuffix("\n")


def fingerprint(target: Target) -> str | None:
    """A short hash of the stage's parameter names and versions (``None`` when there are none).

    ``qr deploy`` puts it in the function's description, so a settings change makes Terraform
    publish a new version, and the alias move starts new execution environments that read them.
    """
    parameters = Environment(target).list()
    if not parameters:
        return None
    text = "\n".join(f"{p.name}:{p.version}" for p in parameters)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
