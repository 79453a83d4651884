"""``qr init``: render a project template into a directory.

Templates live in ``qr.scaffolds`` as ``NNNN-<name>/`` folders (see its README). Rendering never
overwrites: an existing project, or any file the template would write, stops it before anything is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

import qr.scaffolds
from qr.cli.errors import QrError
from qr.runtime import __version__
from qr.runtime._suggest import did_you_mean
from qr.runtime.config import ARCHITECTURES, CONFIG_FILE, NAME_RE, REGION_RE, RUNTIMES

DEFAULT_TEMPLATE = "default"


@dataclass(frozen=True)
class Answers:
    name: str
    region: str = "us-east-1"
    runtime: str = "python3.12"
    architecture: str = "arm64"

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise QrError(
                f"project name {self.name!r} is not valid",
                "Use 1-40 characters of a-z, 0-9 and '-' (it prefixes every cloud resource).",
            )
        if not REGION_RE.match(self.region):
            raise QrError(
                f"region {self.region!r} is not an AWS region", "Use e.g. us-east-1 or eu-west-1."
            )
        if self.runtime not in RUNTIMES:
            raise QrError(
                f"runtime {self.runtime!r} is not supported", f"Use one of: {', '.join(RUNTIMES)}."
            )
        if self.architecture not in ARCHITECTURES:
            raise QrError(
                f"architecture {self.architecture!r} is not supported",
                f"Use one of: {', '.join(ARCHITECTURES)}.",
            )


def templates() -> dict[str, Path]:
    """Template name -> folder, in their numbered order."""
    base = Path(next(iter(qr.scaffolds.__path__)))
    found: dict[str, Path] = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and p.name[:4].isdigit()):
        found[folder.name.partition("-")[2]] = folder
    return found


def plan(template: str, answers: Answers) -> dict[str, str]:
    """Relative path -> file content that ``template`` renders to."""
    available = templates()
    if template not in available:
        raise QrError(
            f"no template named {template!r}.{did_you_mean(template, available)}",
            f"Available templates: {', '.join(available)}.",
        )
    source = available[template]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(source),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    context: Mapping[str, str] = {
        "name": answers.name,
        "region": answers.region,
        "runtime": answers.runtime,
        "architecture": answers.architecture,
        "qr_version": __version__,
    }
    files: dict[str, str] = {}
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = path.relative_to(source).as_posix()
        target = "/".join(
            "." + part.removeprefix("dot-") if part.startswith("dot-") else part
            for part in relative.split("/")
        )
        if target.endswith(".j2"):
            files[target.removesuffix(".j2")] = env.get_template(relative).render(context)
        else:
            files[target] = path.read_text(encoding="utf-8")
    return files


def render(directory: Path, template: str, answers: Answers) -> list[str]:
    """Write the template into ``directory``; returns the files written."""
    answers.validate()
    files = plan(template, answers)
    if (directory / CONFIG_FILE).exists():
        raise QrError(
            f"{directory / CONFIG_FILE} already exists: this is already a qr project",
            "Pick another directory (qr init NEW_DIR); qr init never overwrites a project.",
        )
    clashes = sorted(name for name in files if (directory / name).exists())
    if clashes:
        shown = ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise QrError(
            f"{directory} already has files the template would overwrite: {shown}",
            "Run qr init in an empty or new directory; nothing was written.",
        )
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return list(files)
