"""Load handler files by path, each project apart from any other loaded in the process.

Handler file names are routes, not identifiers (``[id].py``, ``update_profile.fifo.py``), so they
cannot be imported by name. Each is executed under a synthetic module name,
``qr_app:<project>:<relative path>`` (``<project>``: 8 hex digits of a hash of the project root's
path, so the same on every run from the same place; unique, readable in logs), registered in
``sys.modules`` before it runs so dataclasses and typing work inside it.

The project root goes first on ``sys.path`` so ``lib/`` and other plain modules import normally
(``use_root``). Plain modules are cached in ``sys.modules`` by name alone, so a second project in
the same process (two ``qr.runtime.testing.Client``s in one test) would be served the first one's
``lib``: when a scan moves to another root, the plain modules imported from the previous roots
(a module whose file lies under a root, reached through it: ``<root>/lib/words.py`` as
``lib.words``) leave ``sys.modules`` and those roots leave ``sys.path``. Handler modules stay (their
names differ), and so do the module objects the other project's handlers already hold; only an
import that runs later, inside a function, resolves against the project loaded last.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from qr.runtime.errors import Problem

MODULE_PREFIX = "qr_app:"
_KEPT_NAMES = frozenset({"tests", "test", "conftest"})
"""Top-level names never taken out: a project's test modules belong to the test runner."""
_roots: list[str] = []
"""Project roots ``use_root`` has put on ``sys.path``, the current one first (a few: the modules
of older ones are gone already)."""
_KEPT_ROOTS = 16


@functools.lru_cache(maxsize=64)
def project_tag(root: str) -> str:
    """8 hex digits naming the project at ``root`` (a resolved path) in module names."""
    return hashlib.sha256(root.encode("utf-8")).hexdigest()[:8]


def module_name(root: Path, relative: str) -> str:
    """``qr_app:<project>:<relative>``, the module name of handler file ``relative``."""
    return f"{MODULE_PREFIX}{project_tag(_resolved(root))}:{relative}"


def display_name(name: str) -> str:
    """A handler module's name as logs show it: its relative path."""
    if not name.startswith(MODULE_PREFIX):
        return name
    return name[len(MODULE_PREFIX) :].split(":", 1)[-1]


def use_root(root: Path) -> None:
    """Make ``root``'s plain modules the ones ``import`` finds (see the module docstring)."""
    entry = _resolved(root)
    others = [r for r in _roots if r != entry]
    if _roots and _roots[0] != entry:
        prefixes = tuple(r + os.sep for r in others)
        for name, module in list(sys.modules.items()):
            if _imported_from(name, module, prefixes):
                del sys.modules[name]
        sys.path[:] = [p for p in sys.path if p not in others]
        importlib.invalidate_caches()
    _roots[:] = [entry, *others][:_KEPT_ROOTS]
    if sys.path[:1] != [entry]:
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def _imported_from(name: str, module: ModuleType | None, prefixes: tuple[str, ...]) -> bool:
    """Was ``module`` imported as a plain module through a root (``<root>/``) in ``prefixes``?"""
    try:  # some modules compute attributes lazily, and may fail doing it
        file = getattr(module, "__file__", None)
        places = [file] if isinstance(file, str) else list(getattr(module, "__path__", None) or ())
    except Exception:
        return False
    top = name.split(".", 1)[0]
    for place in places:
        if not isinstance(place, str) or not place.startswith(prefixes):
            continue
        if name.startswith(MODULE_PREFIX) or top in _KEPT_NAMES:
            return False
        for prefix in prefixes:
            if place.startswith(prefix):
                first = place[len(prefix) :].split(os.sep, 1)[0]
                if first.split(".", 1)[0] == top:
                    return True
    return False


def _resolved(root: Path) -> str:
    """``root`` as text; absolute roots are taken as given (a manifest's root is resolved)."""
    return str(root if root.is_absolute() else root.resolve())


def load_module(root: Path, relative: str) -> ModuleType:
    """Execute ``root/relative`` as a fresh module; a failure becomes a ``LoadError``."""
    path = (root / relative).resolve()
    name = module_name(root, relative)
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
