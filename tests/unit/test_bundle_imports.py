"""How the bundle finds what qr.runtime needs: by reading its imports."""

from __future__ import annotations

from pathlib import Path

import qr.runtime
from qr.cli.bundle import (
    PROVIDED_BY_LAMBDA,
    app_requirements,
    imported_names,
    runtime_files,
    runtime_requirements,
)

SOURCE = """
from __future__ import annotations
import os, json.decoder
from typing import TYPE_CHECKING
from . import sibling
from .x import y
import starlette.requests

if TYPE_CHECKING:
    import mypy_boto3_sqs
else:
    import cronsim

try:
    import orjson
except ImportError:
    orjson = None

try:
    import must_have
except ValueError:
    pass

def lazy():
    import boto3
    from yaml import safe_load
"""


def test_imported_names_sees_lazy_imports_and_skips_optional_ones() -> None:
    names = imported_names(SOURCE)
    assert names == {
        "__future__", "os", "json", "typing", "starlette", "cronsim", "must_have", "boto3", "yaml",
    }  # fmt: skip


def test_runtime_requirements_are_pinned_and_leave_out_boto3() -> None:
    pins = runtime_requirements(Path(qr.runtime.__file__).parent)
    names = {pin.split("==")[0].lower() for pin in pins}
    assert {"cronsim", "pyyaml", "starlette", "python-multipart"} <= names
    assert not names & PROVIDED_BY_LAMBDA
    assert all("==" in pin for pin in pins)


def test_runtime_files_leave_out_dev_only_modules() -> None:
    names = [name for name, _ in runtime_files(Path(qr.runtime.__file__).parent)]
    assert "qr/runtime/manifest.py" in names
    assert not [n for n in names if n.startswith(("qr/runtime/testing", "qr/runtime/local/"))]
    assert not [n for n in names if "__pycache__" in n or n.startswith("qr/cli")]


def test_app_requirements_from_requirements_txt_or_pyproject(tmp_path: Path) -> None:
    assert app_requirements(tmp_path) == []
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["markupsafe>=2", "queue-run"]\n'
    )
    assert app_requirements(tmp_path) == ["markupsafe>=2"]
    (tmp_path / "requirements.txt").write_text(
        "# mine\nQueue_Run==0.1\nhttpx  # http\n-r ./more.txt\n--find-links /opt/x\n"
    )
    assert app_requirements(tmp_path) == [
        "httpx",
        f"-r {(tmp_path / 'more.txt').resolve()}",
        "--find-links /opt/x",
    ]
