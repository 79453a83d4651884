"""``qr deploy`` and ``qr destroy``: build, Terraform, then the alias.

Deploy stages (each stops the run with a ``QrError`` when it fails, so later stages never run):

1. preflight - the stage exists, the region is real, credentials are there, a terraform binary
   is found, and a confirmation is possible (a terminal) unless ``--yes``;
2. build - ``qr.cli.build.build`` renders ``.qr/build/<stage>/`` (injectable: tests and
   ``--no-build`` use what is there);
3. terraform - a backend override file (local state in ``.qr/state/<stage>/`` or the S3 backend
   from qr.yaml), ``init``, ``plan`` (summary shown; ``--plan`` stops here), confirmation,
   ``apply`` with live progress;
4. release - ``output -json``, publish/confirm the version, move ``current`` to it, record the
   deploy, print URLs. Reached only after a successful apply: a failed apply leaves the alias
   (and so the traffic) where it was.

Terraform's working data (``TF_DATA_DIR``) and plan live in ``.qr/terraform/<stage>/``, outside the
build directory, so a rebuild never loses them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws
from qr.cli.deploy.domain import certificate_ready, show_records
from qr.cli.deploy.env import fingerprint
from qr.cli.deploy.target import Target
from qr.cli.deploy.terraform import PlanSummary, Terraform, TerraformBinary, find_terraform
from qr.cli.deploy.versions import (
    ALIAS,
    DeploymentLog,
    Record,
    Versions,
    current_user,
    git_sha,
    now_iso,
)
from qr.cli.errors import QrError
from qr.cli.project import build_dir, find_root
from qr.runtime.config import ProjectConfig, load_config
from qr.runtime.local.private import private_dir

BuildStep = Callable[[Path, str], Path]
"""``(root, stage) -> terraform directory`` of the rendered stage."""

BACKEND_OVERRIDE = "qr_backend_override.tf"
SETTINGS_OVERRIDE = "qr_settings_override.tf"
_FUNCTION = re.compile(r'^resource\s+"aws_lambda_function"\s+"app"', re.MULTILINE)
_BACKEND = re.compile(r'^\s*backend\s+"', re.MULTILINE)
_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "±", "read": "<="}


def default_build(root: Path, stage: str) -> Path:
    """Render the stage with ``qr build`` and return its Terraform directory."""
    # Imported here: the build pulls in jinja2, hcl2 and pip machinery that other commands skip.
    from qr.cli.build import build

    return build(root, stage).terraform_dir


def existing_build(root: Path, stage: str) -> Path:
    """The Terraform directory as it is (``qr deploy --no-build``)."""
    directory = build_dir(root, stage) / "terraform"
    if not any(directory.glob("*.tf")):
        raise QrError(
            f"nothing is built for stage {stage!r}: {directory} has no .tf files",
            f"Run 'qr build --stage {stage}' first, or deploy without --no-build.",
        )
    return directory


def for_command(project: Path, stage: str | None, *, no_build: bool) -> Deployer:
    """The deployer ``qr deploy`` / ``qr destroy`` use: the project around ``project``."""
    return Deployer(
        find_root(project),
        stage,
        out=Output(),
        build=existing_build if no_build else default_build,
    )


def is_interactive() -> bool:
    return sys.stdin.isatty() and not os.environ.get("CI")


@dataclass
class DeployResult:
    stage: str
    plan: PlanSummary
    applied: bool = False
    version: str | None = None
    previous: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    record: Record | None = None


class Deployer:
    """Deploys or destroys one stage of the project at ``root``."""

    def __init__(
        self,
        root: Path,
        stage: str | None,
        *,
        out: Output,
        aws: Aws | None = None,
        build: BuildStep = default_build,
        terraform: TerraformBinary | None = None,
        env: Mapping[str, str] | None = None,
        confirm: Callable[[str], bool] | None = None,
        ask: Callable[[str], str] | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.root = root
        self.config: ProjectConfig = load_config(root)
        self.stage = self.config.stage(stage).name
        self.out = out
        self.aws = aws or Aws(self.config.region)
        self.build = build
        self._binary = terraform
        self.env = dict(os.environ if env is None else env)
        self.confirm = confirm or (lambda prompt: typer.confirm(prompt, default=False))
        self.ask = ask or (lambda prompt: str(typer.prompt(prompt, default="")))
        self.interactive = is_interactive() if interactive is None else interactive
        self.log = DeploymentLog(root)

    @property
    def work_dir(self) -> Path:
        return self.root / ".qr" / "terraform" / self.stage

    def deploy(self, *, plan_only: bool = False, yes: bool = False) -> DeployResult:
        if not (yes or plan_only or self.interactive):
            raise QrError(
                "qr deploy needs a confirmation and there is no terminal to ask on",
                "Run 'qr deploy --yes' to apply without asking (as CI jobs do), or "
                "'qr deploy --plan' to only show what would change.",
            )
        terraform = self._prepare()
        self.out.line(f"Planning stage {self.stage} ...")
        plan_file = self.work_dir / "tfplan"
        summary = terraform.plan(plan_file)
        self._show_plan(summary)
        result = DeployResult(self.stage, summary)
        if plan_only:
            return result
        if not summary.empty:
            if not yes and not self.confirm(f"Apply these changes to stage {self.stage}?"):
                raise QrError("deploy cancelled; nothing was changed", exit_code=1)
            self.out.line(f"Applying ({summary.text}) ...")
            try:
                terraform.apply(plan_file)
            except QrError as exc:
                raise QrError(
                    exc.message,
                    f"{exc.hint}\nThe alias '{ALIAS}' was not moved: the previous version "
                    "keeps serving.",
                    exit_code=exc.exit_code,
                ) from None
            result.applied = True
        result.outputs = terraform.output()
        self._release(result)
        return result

    def destroy(self, *, yes: bool = False) -> PlanSummary:
        if not yes:
            if not self.interactive:
                raise QrError(
                    "qr destroy needs the stage name typed back and there is no terminal",
                    f"Run 'qr destroy --stage {self.stage} --yes' to destroy without asking.",
                )
            typed = self.ask(
                f"This deletes every resource of stage {self.stage!r} (functions, queues with "
                f"their messages, APIs). Type the stage name to confirm"
            )
            if typed.strip() != self.stage:
                raise QrError(
                    f"destroy cancelled: {typed.strip()!r} is not {self.stage!r}",
                    "Nothing was changed. Type the stage name exactly to confirm.",
                )
        terraform = self._prepare()
        plan_file = self.work_dir / "tfplan-destroy"
        self.out.line(f"Planning the destruction of stage {self.stage} ...")
        summary = terraform.plan(plan_file, destroy=True)
        self._show_plan(summary)
        if not summary.empty:
            terraform.apply(plan_file)
        self.out.success(f"stage {self.stage} destroyed ({summary.remove} resources)")
        self.out.line(
            "Kept: the deploy history in .qr/deployments.json, SSM parameters set with qr env, "
            "and the Terraform state bucket (when qr.yaml configures one)."
        )
        return summary

    def _prepare(self) -> Terraform:
        self.aws.check_region()
        self.aws.check_credentials()
        binary = self._binary or find_terraform(self.env)
        self.out.line(f"Building stage {self.stage} ...")
        directory = self.build(self.root, self.stage)
        self._write_backend(directory)
        stage = self.config.stage(self.stage)
        certificate_ready(self.aws, directory, stage.domain if stage.zone is None else None)
        self._write_settings(directory)
        self.env.setdefault("TF_PLUGIN_CACHE_DIR", str(_plugin_cache()))
        Path(self.env["TF_PLUGIN_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
        terraform = Terraform(
            binary, directory, data_dir=self.work_dir, out=self.out, env=self.env, stage=self.stage
        )
        self.out.line(f"Initialising Terraform ({binary.flavor} {binary.version_text}) ...")
        terraform.init()
        return terraform

    def _write_backend(self, directory: Path) -> None:
        """Where the state lives: never inside the build directory, which is re-rendered.

        ``qr build`` declares the backend itself; a configuration without one (written by hand or
        by an older qr) gets the same one from an override file.
        """
        override = directory / BACKEND_OVERRIDE
        override.unlink(missing_ok=True)
        if any(_BACKEND.search(p.read_text(encoding="utf-8")) for p in directory.glob("*.tf")):
            return
        backend = self.config.backend
        if backend is None:
            state = self.root / ".qr" / "state" / self.stage / "terraform.tfstate"
            private_dir(state.parent)  # the state holds every resource's attributes, secrets too
            body = f'  backend "local" {{\n    path = "{_hcl(state)}"\n  }}\n'
        else:
            key = f"{backend.key_prefix}/{self.config.name}/{self.stage}/terraform.tfstate"
            body = (
                '  backend "s3" {\n'
                f'    bucket       = "{_hcl(backend.bucket)}"\n'
                f'    key          = "{_hcl(key)}"\n'
                f'    region       = "{_hcl(backend.region)}"\n'
                "    use_lockfile = true\n"
                "    encrypt      = true\n"
                "  }\n"
            )
        text = f"# Written by qr deploy: where Terraform keeps this stage's state.\nterraform {{\n{body}}}\n"
        override.write_text(text, encoding="utf-8")

    def _write_settings(self, directory: Path) -> None:
        """Fingerprint of the ``qr env`` settings in the function's description (see env.py)."""
        override = directory / SETTINGS_OVERRIDE
        override.unlink(missing_ok=True)
        if not any(_FUNCTION.search(p.read_text(encoding="utf-8")) for p in directory.glob("*.tf")):
            return
        target = Target(self.root, self.config, self.stage, self.aws)
        stamp = fingerprint(target)
        if stamp is None:
            return
        override.write_text(
            "# Written by qr deploy: a new version when the qr env settings change.\n"
            'resource "aws_lambda_function" "app" {\n'
            f'  description = "qr settings {stamp}"\n'
            "}\n",
            encoding="utf-8",
        )

    def _show_plan(self, summary: PlanSummary) -> None:
        changes = [c for c in summary.changes if c.action not in ("noop", "read")]
        for change in changes:
            symbol = _SYMBOLS.get(change.action, "?")
            if self.out.rich:
                colour = {"+": "green", "-": "red"}.get(symbol, "yellow")
                self.out.print(
                    f"  [{colour}]{symbol}[/{colour}] {change.address} [dim]{change.action}[/dim]"
                )
            else:
                self.out.line(f"  {symbol} {change.address} ({change.action})")
        self.out.line(f"Plan: {summary.text}." if not summary.empty else "No changes.")

    def _release(self, result: DeployResult) -> None:
        function = result.outputs.get("function_name")
        if not isinstance(function, str) or not function:
            raise QrError(
                "the Terraform outputs have no 'function_name'",
                f"The rendered configuration in {build_dir(self.root, self.stage)} must output "
                "function_name; rebuild with this version of qr (qr build).",
            )
        alias = str(result.outputs.get("alias_name") or ALIAS)
        versions = Versions(self.aws, function, alias)
        previous = versions.alias_version()
        record = Record(
            stage=self.stage,
            kind="deploy",
            version="",
            previous=previous,
            time=now_iso(),
            user=current_user(),
            git_sha=git_sha(self.root),
            identity=_identity(self.aws),
            outputs=result.outputs,
        )
        version = versions.publish(record.description())
        record = Record(**{**record.__dict__, "version": version})
        versions.point_alias(version, record.description())
        self.log.append(record)
        result.version, result.previous, result.record = version, previous, record
        moved = (
            f"{previous} → {version}"
            if previous and previous != version
            else f"{version} (unchanged)"
            if previous
            else version
        )
        self.out.success(f"stage {self.stage} deployed: {function}:{alias} = version {moved}")
        for label, key in (("HTTP", "http_url"), ("WebSocket", "ws_url")):
            if result.outputs.get(key):
                self.out.line(f"  {label:<10} {result.outputs[key]}")
        self.out.line(f"  record     {record.summary}")
        records = result.outputs.get("dns_records") or []
        if records:
            show_records(self.out, "DNS records to create (no Route53 zone in qr.yaml)", records)


def _identity(aws: Aws) -> str | None:
    try:
        return str(aws.client("sts").get_caller_identity()["Arn"])
    except Exception:  # who deployed is informative only; never fail a deploy over it
        return None


def _plugin_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qr" / "terraform-plugins"


def _hcl(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')
