"""Terraform model -> ``*.tf`` text, through the Jinja2 templates in ``qr.terraform_templates``.

Templates print the model: loops over its queues, routes and schedules, and values through
two filters — ``hcl`` (a Python value as an HCL literal; ``Expr`` values are printed raw) and
``aligned`` (``key = value`` lines padded the way ``terraform fmt`` pads them). The output is
what ``terraform fmt`` would write, so a rendered module never shows a formatting diff; the tests
run the real ``terraform fmt -check`` to hold that.

``render(model)`` returns ``{file name: text}``; ``write(model, directory)`` writes them and
removes ``*.tf`` files a previous render left that this one no longer produces (nothing else in
the directory is touched: ``.terraform/``, lock files and local state stay).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from qr.cli.terraform.model import Expr, TerraformModel

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_KEYWORDS = frozenset({"true", "false", "null", "for", "in", "if", "endfor", "endif"})
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("qr.terraform_templates", "."),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def hcl(value: Any) -> str:
    """A Python value as an HCL literal (strings escaped, ``${`` kept literal)."""
    if isinstance(value, Expr):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl(v) for v in value) + "]"
    raise TypeError(f"no HCL literal for {type(value).__name__}")


def aligned(pairs: Iterable[tuple[str, Any]] | Mapping[str, Any], indent: int) -> str:
    """``key = value`` lines with the ``=`` signs lined up, as ``terraform fmt`` does."""
    items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
    if not items:
        return ""
    keys = [key(k) for k, _ in items]
    width = max(len(k) for k in keys)
    pad = " " * indent
    return "\n".join(
        f"{pad}{k.ljust(width)} = {hcl(v)}" for k, (_, v) in zip(keys, items, strict=True)
    )


def key(name: str) -> str:
    """An argument name or object key: bare when it is an identifier, else quoted."""
    return name if _IDENTIFIER.match(name) and name not in _KEYWORDS else hcl(name)


_ENV.filters["hcl"] = hcl
_ENV.filters["aligned"] = aligned
_ENV.filters["key"] = key


def files_for(model: TerraformModel) -> list[str]:
    """Which templates this model needs (one file per concern)."""
    files = ["versions.tf", "providers.tf", "variables.tf", "main.tf", "function.tf"]
    if model.queues:
        files.append("queues.tf")
    if model.jobs:
        files.append("jobs.tf")
    if model.http:
        files.append("http_api.tf")
    if model.websocket:
        files.append("websocket.tf")
    if model.flow:
        files.append("flow.tf")
    if model.schedules:
        files.append("schedules.tf")
    if model.domain:
        files.append("domain.tf")
    files.append("outputs.tf")
    return files


def render(model: TerraformModel) -> dict[str, str]:
    """Every ``*.tf`` file of the module, by name."""
    return {name: _ENV.get_template(f"{name}.j2").render(model=model) for name in files_for(model)}


def write(model: TerraformModel, directory: Path) -> dict[str, Path]:
    """Render into ``directory``; stale ``*.tf`` files from an earlier render are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render(model)
    for stale in directory.glob("*.tf"):
        if stale.name not in rendered:
            stale.unlink()
    written: dict[str, Path] = {}
    for name, text in rendered.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written[name] = path
    return written
