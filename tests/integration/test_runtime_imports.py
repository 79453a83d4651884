"""The runtime is copied into every Lambda bundle: importing it must not pull in CLI dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

BANNED = (
    "typer",
    "rich",
    "jinja2",
    "docker",
    "boto3",
    "botocore",
    "qr.cli",
    "hcl2",
    "uvicorn",
    "watchfiles",
)
# Modules that only run on a developer's machine (never in the bundle) may use more.
DEV_ONLY = ("qr.runtime.testing", "qr.runtime.local")

PROBE = """
import importlib, json, pkgutil, sys
import qr.runtime
names = [m.name for m in pkgutil.walk_packages(qr.runtime.__path__, "qr.runtime.")]
dev_only = tuple(sys.argv[1].split(","))
for name in names:
    if not name.startswith(dev_only):
        importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_runtime_imports_no_cli_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(DEV_ONLY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = json.loads(result.stdout)
    assert "qr.runtime.manifest" in data["imported"]
    offenders = [m for m in data["loaded"] if m.split(".")[0] in BANNED or m.startswith("qr.cli")]
    assert offenders == []


def test_import_qr_runtime_is_light() -> None:
    code = "import sys, qr.runtime; print(','.join(m for m in sys.modules if m.startswith(('starlette', 'yaml', 'cronsim'))))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
