"""Driving the ``terraform`` (or ``tofu``) binary: find it, init, plan, apply, output, destroy.

Pipeline of one run: ``find_terraform`` picks the binary (``QR_TERRAFORM`` / ``TERRAFORM_BINARY``,
then ``terraform``, then ``tofu``) and checks ``version -json`` → ``Terraform.init`` (plain output,
shown only on failure) → ``plan`` (``-json``; returns a ``PlanSummary`` the caller shows and
confirms) → ``apply`` of the saved plan (``-json``; each event goes to a ``Progress``: a live
table on a terminal, one line per step when piped) → ``output`` (``output -json`` values).

Terraform runs in its own session, so a terminal Ctrl+C reaches only qr, which forwards exactly
one SIGINT and waits: Terraform then stops gracefully and writes its state (a second interrupt
would make it abandon the state, so qr never sends one). Failures are read from the ``diagnostic``
events and stderr and explained: a locked state, missing or rejected credentials, a bad region,
provider downloads, anything else with Terraform's own summary and file:line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from rich.live import Live
from rich.table import Table
from rich.text import Text

from qr.cli.console import Output
from qr.cli.errors import QrError
from qr.runtime.local.private import private_dir

MINIMUM = {"terraform": (1, 10, 0), "tofu": (1, 8, 0)}
"""S3-native state locking (``use_lockfile``) needs these versions."""

ENV_VARIABLES = ("QR_TERRAFORM", "TERRAFORM_BINARY", "TERRAFORM_BINARY_NAME")
_INSTALL_HINT = (
    "Install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install) or OpenTofu "
    ">= 1.8 and put it on PATH, or point QR_TERRAFORM at the binary. 'qr build' renders the "
    "Terraform without running it."
)


@dataclass(frozen=True)
class TerraformBinary:
    path: str
    version: tuple[int, int, int]
    flavor: str
    """``terraform`` or ``tofu``."""

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def find_terraform(
    env: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = subprocess.run,
) -> TerraformBinary:
    """The binary to use, checked with ``version -json``; ``QrError`` with the fix otherwise."""
    env = os.environ if env is None else env
    for variable in ENV_VARIABLES:
        if env.get(variable):
            configured = env[variable]
            path = which(configured) if os.sep not in configured else configured
            if path is None or not Path(path).is_file():
                raise QrError(
                    f"{variable}={configured} does not name an executable file",
                    f"Set {variable} to the full path of terraform or tofu, or unset it to use "
                    "the one on PATH.",
                )
            return _check_version(path, run)
    for name in ("terraform", "tofu"):
        path = which(name)
        if path is not None:
            return _check_version(path, run)
    raise QrError("terraform was not found on PATH", _INSTALL_HINT)


def _check_version(path: str, run: Runner) -> TerraformBinary:
    try:
        result = run(
            [path, "version", "-json"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise QrError(f"could not run {path}: {exc}", _INSTALL_HINT) from None
    try:
        reported = json.loads(result.stdout)["terraform_version"]
        version = _parse_version(str(reported))
    except (ValueError, KeyError, TypeError):
        raise QrError(
            f"{path} is not a working terraform: 'version -json' printed "
            f"{(result.stdout or result.stderr).strip()[:200]!r}",
            _INSTALL_HINT,
        ) from None
    flavor = "tofu" if "tofu" in Path(path).name else "terraform"
    if version < MINIMUM[flavor]:
        need = ".".join(map(str, MINIMUM[flavor]))
        raise QrError(
            f"{flavor} {'.'.join(map(str, version))} at {path} is too old (qr needs >= {need})",
            _INSTALL_HINT,
        )
    return TerraformBinary(path=path, version=version, flavor=flavor)


def _parse_version(text: str) -> tuple[int, int, int]:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(text)
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


@dataclass(frozen=True)
class Change:
    address: str
    action: str
    """create, update, delete, replace, read, noop, move, import."""


@dataclass
class PlanSummary:
    add: int = 0
    change: int = 0
    remove: int = 0
    changes: list[Change] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Output name -> action (create/update/delete) when outputs change."""

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)

    @property
    def text(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.remove} to destroy"


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str
    where: str | None
    """``file:line`` in the rendered configuration, when Terraform names one."""

    def describe(self) -> str:
        head = f"{self.where}: {self.summary}" if self.where else self.summary
        return f"{head}\n{self.detail}".strip()


class Progress:
    """Terraform's apply events as a live table on a terminal, or one plain line per step."""

    _DOING: ClassVar[dict[str, str]] = {
        "create": "creating",
        "update": "updating",
        "delete": "destroying",
        "replace": "replacing",
        "read": "reading",
    }
    _DONE: ClassVar[dict[str, str]] = {
        "create": "created",
        "update": "updated",
        "delete": "destroyed",
        "replace": "replaced",
        "read": "read",
    }

    def __init__(self, out: Output, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.rows: dict[str, dict[str, Any]] = {}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.out.rich:
            self._live = Live(
                self._render(), console=self.out.console, refresh_per_second=4, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
            self._live = None

    def handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        hook = event.get("hook") or {}
        address = str((hook.get("resource") or {}).get("addr", ""))
        action = str(hook.get("action", ""))
        if kind == "apply_start" and address:
            self.rows[address] = {
                "action": action,
                "state": "running",
                "started": self.clock(),
                "elapsed": None,
            }
            self._plain(f"  {self._DOING.get(action, action)} {address} ...")
        elif kind in ("apply_complete", "apply_errored") and address:
            row = self.rows.setdefault(
                address, {"action": action, "started": self.clock(), "elapsed": None}
            )
            row["state"] = "done" if kind == "apply_complete" else "failed"
            row["elapsed"] = hook.get("elapsed_seconds", self.clock() - row["started"])
            if kind == "apply_complete":
                word = self._DONE.get(action, action)
                self._plain(f"  {word} {address} ({_seconds(row['elapsed'])})")
            else:
                self._plain(f"  FAILED {self._DOING.get(action, action)} {address}")
        elif kind == "apply_progress" and address in self.rows:
            self.rows[address]["elapsed"] = hook.get("elapsed_seconds")
        elif kind == "provision_progress" and address:
            output = str(hook.get("output", "")).rstrip()
            if output and not self.out.rich:
                self._plain(f"    {address}: {output}")
        if self._live is not None:
            self._live.update(self._render())

    def _plain(self, text: str) -> None:
        if not self.out.rich:
            self.out.line(text)

    def _render(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 1))
        now = self.clock()
        for address, row in self.rows.items():
            state = row.get("state", "running")
            elapsed = row["elapsed"] if row["elapsed"] is not None else now - row["started"]
            if state == "done":
                mark, word = Text("✓", style="green"), self._DONE.get(row["action"], row["action"])
            elif state == "failed":
                mark, word = Text("✗", style="red"), "failed"
            else:
                mark, word = Text("…", style="yellow"), self._DOING.get(row["action"], "working")
            table.add_row(mark, Text(address), Text(word, style="dim"), Text(_seconds(elapsed)))
        return table


def _seconds(value: object) -> str:
    try:
        return f"{float(str(value)):.0f}s"
    except ValueError:
        return "?"


@dataclass
class _Run:
    returncode: int
    diagnostics: list[Diagnostic]
    stderr: str
    interrupted: bool


class Terraform:
    """One Terraform working directory (the rendered stage) and its data directory."""

    def __init__(
        self,
        binary: TerraformBinary,
        workdir: Path,
        *,
        data_dir: Path,
        out: Output,
        env: Mapping[str, str] | None = None,
        stage: str = "",
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.data_dir = data_dir
        self.out = out
        self.stage = stage
        base = dict(os.environ if env is None else env)
        base.update(
            TF_IN_AUTOMATION="1", TF_INPUT="0", TF_DATA_DIR=str(data_dir), CHECKPOINT_DISABLE="1"
        )
        self.env = base

    @property
    def _chdir(self) -> str:
        return f"{self.binary.flavor} -chdir={self.workdir}"

    def init(self, backend_config: Mapping[str, str] | None = None) -> None:
        private_dir(self.data_dir)  # Terraform keeps copies of the state and plans here
        args = ["init", "-input=false", "-no-color", "-reconfigure"]
        args += [f"-backend-config={key}={value}" for key, value in (backend_config or {}).items()]
        result = self._run(args)
        if result.returncode != 0:
            raise self._explain("init", [], result.stdout + "\n" + result.stderr)

    def plan(self, plan_file: Path, *, destroy: bool = False) -> PlanSummary:
        summary = PlanSummary()

        def on_event(event: Mapping[str, Any]) -> None:
            kind = event.get("type")
            if kind == "planned_change":
                change = event.get("change") or {}
                address = (change.get("resource") or {}).get("addr", "")
                summary.changes.append(Change(str(address), str(change.get("action", ""))))
            elif kind == "change_summary":
                changes = event.get("changes") or {}
                summary.add = int(changes.get("add", 0))
                summary.change = int(changes.get("change", 0))
                summary.remove = int(changes.get("remove", 0))
            elif kind == "outputs":
                for name, info in (event.get("outputs") or {}).items():
                    if isinstance(info, dict) and info.get("action"):
                        summary.outputs[name] = str(info["action"])

        args = ["plan", "-json", "-input=false", "-lock-timeout=0s", f"-out={plan_file}"]
        if destroy:
            args.append("-destroy")
        run = self._stream(args, on_event)
        if run.returncode != 0 or run.interrupted:
            raise self._explain("plan", run.diagnostics, run.stderr, interrupted=run.interrupted)
        return summary

    def apply(self, plan_file: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        with Progress(self.out, clock) as progress:
            run = self._stream(
                ["apply", "-json", "-input=false", "-lock-timeout=0s", str(plan_file)],
                progress.handle,
            )
        if run.returncode != 0 or run.interrupted:
            raise self._explain("apply", run.diagnostics, run.stderr, interrupted=run.interrupted)

    def output(self) -> dict[str, Any]:
        result = self._run(["output", "-json", "-no-color"])
        if result.returncode != 0:
            raise self._explain("output", [], result.stderr)
        try:
            raw = json.loads(result.stdout or "{}")
        except ValueError:
            raise QrError(
                f"'terraform output -json' printed something that is not JSON in {self.workdir}",
                "Run it yourself to see what happened: " + f"{self._chdir} output -json",
            ) from None
        return {name: info.get("value") for name, info in raw.items() if isinstance(info, dict)}

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """A short command whose output is only read afterwards."""
        return subprocess.run(
            [self.binary.path, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def _stream(self, args: Sequence[str], on_event: Callable[[Mapping[str, Any]], None]) -> _Run:
        """Run with ``-json`` output, feeding each event to ``on_event`` as it arrives."""
        diagnostics: list[Diagnostic] = []
        stderr_lines: list[str] = []
        with subprocess.Popen(
            [self.binary.path, *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        ) as process:
            reader = threading.Thread(
                target=lambda: stderr_lines.extend(process.stderr or ()), daemon=True
            )
            reader.start()
            with _forward_interrupts(process, self.out) as interrupted:
                for line in process.stdout or ():
                    event = _parse_event(line)
                    if event is None:
                        continue
                    if event.get("type") == "diagnostic":
                        diagnostics.append(_diagnostic(event))
                    on_event(event)
                returncode = process.wait()
            reader.join()
        return _Run(returncode, diagnostics, "".join(stderr_lines), interrupted[0])

    def _explain(
        self,
        step: str,
        diagnostics: Sequence[Diagnostic],
        text: str,
        *,
        interrupted: bool = False,
    ) -> QrError:
        return explain_failure(
            step, diagnostics, text, chdir=self._chdir, stage=self.stage, interrupted=interrupted
        )


def _parse_event(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _diagnostic(event: Mapping[str, Any]) -> Diagnostic:
    info = event.get("diagnostic") or {}
    where = None
    span = info.get("range")
    if isinstance(span, dict) and span.get("filename"):
        where = f"{span['filename']}:{(span.get('start') or {}).get('line', '?')}"
    return Diagnostic(
        severity=str(info.get("severity", event.get("@level", "error"))),
        summary=str(info.get("summary", event.get("@message", ""))),
        detail=str(info.get("detail", "")),
        where=where,
    )


@contextmanager
def _forward_interrupts(process: subprocess.Popen[str], out: Output) -> Iterator[list[bool]]:
    """Pass the first Ctrl+C to Terraform as SIGINT; later ones only repeat that we are waiting."""
    interrupted = [False]

    def handler(signum: int, frame: FrameType | None) -> None:
        if not interrupted[0]:
            interrupted[0] = True
            out.line("interrupt: asking terraform to stop; waiting for it to save its state ...")
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        else:
            out.line("still waiting for terraform to stop cleanly (it must not lose its state)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield interrupted
        return
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


_LOCKED = re.compile(r"Error acquiring the state lock", re.I)
_LOCK_ID = re.compile(r"ID:\s+([0-9a-f-]{8,})", re.I)
_CREDENTIALS = re.compile(
    r"No valid credential sources|NoCredentialProviders|failed to refresh cached credentials|"
    r"InvalidClientTokenId|ExpiredToken|security token included in the request is invalid|"
    r"failed to get shared config profile",
    re.I,
)
_REGION = re.compile(r"invalid AWS Region|Invalid region|region .* is not valid", re.I)
_DOWNLOAD = re.compile(
    r"Failed to query available provider packages|could not connect to registry|"
    r"Failed to install provider",
    re.I,
)
_NOISE = re.compile(r"CLI configuration|\.terraformrc|terraform\.rc")


def explain_failure(
    step: str,
    diagnostics: Sequence[Diagnostic],
    text: str,
    *,
    chdir: str,
    stage: str = "",
    interrupted: bool = False,
) -> QrError:
    """A ``QrError`` saying what failed in ``terraform <step>`` and how to fix it."""
    errors = [d for d in diagnostics if d.severity == "error"]
    everything = "\n".join([*(d.describe() for d in errors), text])
    where = f" for stage {stage!r}" if stage else ""
    if interrupted:
        return QrError(
            f"terraform {step}{where} was interrupted and stopped cleanly",
            "Its state was saved. Resources it had not reached yet are unchanged; run the same "
            "command again to finish.",
            exit_code=130,
        )
    if _LOCKED.search(everything):
        lock = _LOCK_ID.search(everything)
        unlock = f"{chdir} force-unlock {lock.group(1) if lock else 'LOCK_ID'}"
        return QrError(
            f"the Terraform state{where} is locked by another run",
            "Another qr deploy/destroy (or terraform) is working on this stage. Wait for it to "
            f"finish. If it crashed and nothing is running, release the lock with: {unlock}",
        )
    if _CREDENTIALS.search(everything):
        return QrError(
            f"terraform {step}{where} found no usable AWS credentials",
            "Set AWS_PROFILE to a profile from ~/.aws/config (run 'aws sso login' for SSO "
            "profiles) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then run again.",
        )
    if _REGION.search(everything):
        return QrError(
            f"terraform {step}{where} was given an AWS region that does not exist",
            "Set 'region:' in qr.yaml to a region such as us-east-1, then run again.",
        )
    if _DOWNLOAD.search(everything):
        return QrError(
            f"terraform {step}{where} could not download the providers it needs",
            "Check your network connection (registry.terraform.io must be reachable), or "
            "provide the providers through a plugin cache or mirror (TF_PLUGIN_CACHE_DIR, "
            "provider_installation in ~/.terraformrc).",
        )
    if errors:
        details = "\n\n".join(d.describe() for d in errors[:5])
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip() and not _NOISE.search(ln)]
        details = "\n".join(lines[-15:]) or f"terraform {step} exited with an error"
    return QrError(
        f"terraform {step}{where} failed",
        f"{details}\n\nFix the problem above and run the command again. Debug by hand with: "
        f"{chdir} {step}",
    )
