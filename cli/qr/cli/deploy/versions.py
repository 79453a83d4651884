"""Lambda versions, the ``current`` alias, deploy records and rollback.

Terraform creates the function and the alias ``current`` but ignores the alias's version after
creation (``lifecycle { ignore_changes = [function_version] }``), so traffic moves only here:
``qr deploy`` publishes (or confirms) the version after a successful apply and points the alias at
it; ``qr rollback`` points it at an earlier version without touching anything else.

Every move leaves a ``Record`` (version, git sha, time, user, AWS identity) in
``.qr/deployments.json``; a freshly published version also carries it in its description
(versions are immutable, so a version Terraform already published keeps Terraform's description).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from qr.cli.deploy.aws import Aws, aws_errors, error_code
from qr.cli.errors import QrError
from qr.runtime.local.private import write_private

ALIAS = "current"
DEPLOYMENTS_FILE = Path(".qr") / "deployments.json"
_DESCRIPTION_PREFIX = "qr "


@dataclass(frozen=True)
class Record:
    stage: str
    kind: str
    """``deploy`` or ``rollback``."""
    version: str
    previous: str | None
    time: str
    user: str
    git_sha: str | None = None
    identity: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def description(self) -> str:
        """The version description: compact JSON after ``qr `` (Lambda allows 256 characters)."""
        data = {"sha": self.git_sha, "user": self.user, "time": self.time}
        return (_DESCRIPTION_PREFIX + json.dumps(data, separators=(",", ":")))[:256]

    @property
    def summary(self) -> str:
        sha = f"git {self.git_sha}" if self.git_sha else "no git"
        return f"{self.kind} {self.time} by {self.user} ({sha})"


def parse_description(text: str) -> dict[str, Any] | None:
    """The deploy record stored in a version description, or ``None`` for other descriptions."""
    if not text.startswith(_DESCRIPTION_PREFIX):
        return None
    try:
        data = json.loads(text[len(_DESCRIPTION_PREFIX) :])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class DeploymentLog:
    """``.qr/deployments.json``: every alias move of every stage, oldest first."""

    def __init__(self, root: Path) -> None:
        self.path = root / DEPLOYMENTS_FILE

    def records(self, stage: str | None = None) -> list[Record]:
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            records = [Record(**item) for item in raw.get("deployments", [])]
        except (ValueError, TypeError, AttributeError):
            raise QrError(
                f"{self.path} is not a valid deployment log",
                "It is written by qr deploy; fix the JSON by hand or move the file away "
                "(only the history shown by qr rollback/status is lost).",
            ) from None
        return [r for r in records if stage is None or r.stage == stage]

    def last(self, stage: str, kind: str | None = None) -> Record | None:
        matching = [r for r in self.records(stage) if kind is None or r.kind == kind]
        return matching[-1] if matching else None

    def append(self, record: Record) -> None:
        records = self.records()
        records.append(record)
        data = {"deployments": [asdict(r) for r in records]}
        write_private(self.path, json.dumps(data, indent=2) + "\n")


def git_sha(root: Path, run: Callable[..., Any] = subprocess.run) -> str | None:
    """Short HEAD sha of the project's repository (``-dirty`` with uncommitted changes)."""
    try:
        head = run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if head.returncode != 0:
            return None
        status = run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    sha = str(head.stdout).strip()
    return f"{sha}-dirty" if str(status.stdout).strip() else sha


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Version:
    version: str
    description: str
    modified: str
    code_sha256: str

    @property
    def record(self) -> dict[str, Any] | None:
        return parse_description(self.description)


class Versions:
    """The published versions of one function and its ``current`` alias."""

    def __init__(self, aws: Aws, function: str, alias: str = ALIAS) -> None:
        self.aws = aws
        self.function = function
        self.alias = alias
        self.lambda_ = aws.client("lambda")

    def list(self) -> list[Version]:
        """Published versions, newest first (``$LATEST`` is not a version)."""
        versions: list[Version] = []
        with aws_errors(f"listing the versions of {self.function}"):
            self._require_function()
            for page in self.lambda_.get_paginator("list_versions_by_function").paginate(
                FunctionName=self.function
            ):
                for item in page["Versions"]:
                    if item["Version"] == "$LATEST":
                        continue
                    versions.append(
                        Version(
                            version=item["Version"],
                            description=item.get("Description", ""),
                            modified=str(item.get("LastModified", "")),
                            code_sha256=item.get("CodeSha256", ""),
                        )
                    )
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def alias_version(self) -> str | None:
        """The version ``current`` points at, ``None`` when the alias does not exist yet."""
        with aws_errors(f"reading alias {self.alias!r} of {self.function}"):
            try:
                alias = self.lambda_.get_alias(FunctionName=self.function, Name=self.alias)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                self._require_function()
                return None
        return str(alias["FunctionVersion"])

    def publish(self, description: str) -> str:
        """Publish ``$LATEST`` (Lambda returns the existing version when nothing changed)."""
        with aws_errors(f"publishing a version of {self.function}"):
            self._wait_until_updated()
            published = self.lambda_.publish_version(
                FunctionName=self.function, Description=description
            )
        return str(published["Version"])

    def point_alias(self, version: str, description: str = "") -> None:
        """Move (or create) ``current`` to ``version``."""
        with aws_errors(f"moving alias {self.alias!r} of {self.function} to version {version}"):
            try:
                self.lambda_.update_alias(
                    FunctionName=self.function,
                    Name=self.alias,
                    FunctionVersion=version,
                    Description=description,
                )
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException" or not self._version_exists(
                    version
                ):
                    raise
                self.lambda_.create_alias(
                    FunctionName=self.function,
                    Name=self.alias,
                    FunctionVersion=version,
                    Description=description,
                )

    def _version_exists(self, version: str) -> bool:
        try:
            self.lambda_.get_function_configuration(FunctionName=self.function, Qualifier=version)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    def _require_function(self) -> None:
        try:
            self.lambda_.get_function_configuration(FunctionName=self.function)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise QrError(
                    f"function {self.function} does not exist in {self.aws.region}",
                    "Deploy the stage first with: qr deploy (check --stage and the region in "
                    "qr.yaml).",
                ) from None
            raise

    def _wait_until_updated(self) -> None:
        """PublishVersion fails while an update is in progress; Lambda's waiter covers it."""
        with contextlib.suppress(Exception):  # waiters are an optimisation, not a requirement
            self.lambda_.get_waiter("function_updated_v2").wait(
                FunctionName=self.function, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )


@dataclass(frozen=True)
class Rollback:
    function: str
    previous: str
    version: str
    record: Record | None


def rollback(
    versions: Versions, log: DeploymentLog, stage: str, target: str | None = None
) -> Rollback:
    """Point ``current`` at ``target`` (default: the version before the current one)."""
    current = versions.alias_version()
    if current is None:
        raise QrError(
            f"stage {stage!r} has no alias {versions.alias!r} on {versions.function}",
            "Nothing was deployed through qr yet; run: qr deploy",
        )
    available = [v.version for v in versions.list()]
    if target is None:
        earlier = [v for v in available if current.isdigit() and int(v) < int(current)]
        if not earlier:
            raise QrError(
                f"there is no version before {current} to roll back to",
                "qr rollback VERSION moves to a specific version; see the list above.",
            )
        target = earlier[0]
    elif target not in available:
        shown = ", ".join(available[:10]) or "none"
        raise QrError(
            f"version {target!r} of {versions.function} does not exist",
            f"Pick one of the published versions: {shown}. The alias was not moved.",
        )
    if target == current:
        return Rollback(versions.function, current, target, None)
    record = Record(
        stage=stage,
        kind="rollback",
        version=target,
        previous=current,
        time=now_iso(),
        user=current_user(),
    )
    versions.point_alias(target, f"rollback from {current} by {record.user} at {record.time}")
    log.append(record)
    return Rollback(versions.function, current, target, record)


def history(versions: Versions, log: DeploymentLog, stage: str, limit: int = 10) -> list[list[str]]:
    """Rows (version, deployed at, by, git sha, mark) of the newest published versions."""
    current = versions.alias_version()
    deployed = {r.version: r for r in log.records(stage) if r.kind == "deploy"}
    rows: list[list[str]] = []
    for version in versions.list()[:limit]:
        record = deployed.get(version.version)
        described = version.record or {}
        rows.append(
            [
                version.version,
                record.time if record else str(described.get("time") or version.modified),
                record.user if record else str(described.get("user") or "-"),
                (record.git_sha if record else described.get("sha")) or "-",
                f"← {versions.alias}" if version.version == current else "",
            ]
        )
    return rows
