"""Load handler files by path.

Handler file names are routes, not identifiers (``[id].py``, ``update_profile.fifo.py``), so they
cannot be imported by name. Each is executed under a stable synthetic module name,
``qr_app:<relative path>`` (unique, readable in logs, the same on every run), registered in
``sys.modules`` before it runs so dataclasses and typing work inside it. The project root goes on
``sys.path`` so ``lib/`` and other plain packages import normally.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from qr.runtime.errors import Problem

MODULE_PREFIX = "qr_app:"


def module_name(relative: str) -> str:
    return MODULE_PREFIX + relative


def add_to_path(root: Path) -> None:
    """Make the project root importable (for ``lib/``); idempotent."""
    entry = str(root.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def load_module(root: Path, relative: str) -> ModuleType:
    """Execute ``root/relative`` as a fresh module; a failure becomes a ``LoadError``."""
    path = (root / relative).resolve()
    name = module_name(relative)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise LoadError(
            Problem(relative, None, "cannot be loaded as a Python file", "rename it to end in .py")
        )
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__qr_file__"] = relative
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        _restore(name, previous)
        where = _relative_to(root, Path(exc.filename)) if exc.filename else None
        # A file of the project has the syntax error; else code compiled at import time
        # (eval, exec, a template) raised it: point at the project line that ran it.
        where, line = (where, exc.lineno) if where else _user_frame(root, exc, relative)
        raise LoadError(
            Problem(
                where,
                line,
                f"syntax error: {exc.msg}",
                "fix the syntax; the rest of the project keeps loading",
            )
        ) from exc
    except (Exception, SystemExit) as exc:
        _restore(name, previous)
        where, line = _user_frame(root, exc, relative)
        raise LoadError(
            Problem(
                where,
                line,
                f"failed to import: {type(exc).__name__}: {exc}",
                "fix the error raised while the module loads (see the traceback with --debug)",
            )
        ) from exc
    return module


class LoadError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _restore(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def _relative_to(root: Path, path: Path) -> str | None:
    if not path.is_absolute():
        return None  # "<frozen importlib._bootstrap>", "<string>": no file of the user's
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _user_frame(root: Path, exc: BaseException, default: str) -> tuple[str, int | None]:
    """The innermost traceback frame inside the project: the line the user should look at."""
    found: tuple[str, int | None] = (default, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        relative = _relative_to(root, Path(frame.filename))
        if relative is not None and not relative.startswith((".venv/", ".qr/")):
            found = (relative, frame.lineno)
    return found
