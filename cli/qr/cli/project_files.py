"""Which of the project's files go into the Lambda bundle, and why the others do not.

``select(root)`` walks the project once, in name order, and sorts every entry into *included*
(bundle name -> file) or *skipped* (path, reason). A folder that is skipped is listed once and
not entered. In order, an entry is skipped when it is:

1. qr's or a tool's own: ``tests/``, ``pytest.ini`` and ``conftest.py`` at the top, dot-files and dot-folders (``.env*``, ``.qr``,
   ``.git``, ``.aws``...), virtualenvs (a folder with ``pyvenv.cfg``), caches and ``*.pyc``;
2. a secret by its name (``DENY``: keys, certificates, credential files, Terraform state),
   whether or not the project has a ``.gitignore``;
3. ignored by the project's ``.gitignore`` files, read as git reads them: a ``.gitignore`` in a
   folder applies below it, a deeper file's patterns win over a shallower one's, a later pattern
   over an earlier one, ``!pattern`` re-includes, and nothing inside an ignored folder comes back.

A symbolic link that is left is followed only when its target is inside the project (a file is
shipped with the target's bytes; a folder is walked, once); a link pointing outside the project
is a ``QrError`` naming the link and its target, since its target would ship from wherever it
points (a link to ``/etc/passwd`` or ``~/.ssh``). A broken link is skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from qr.cli.errors import QrError

GITIGNORE = ".gitignore"
DENY = (
    # private keys and certificates
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    # credential and environment files
    ".env*",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    "credentials",
    "credentials.json",
    # Terraform state and variable files carry secrets in plain text
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
)
"""Names that never ship, ``.gitignore`` or not (gitignore pattern syntax)."""

_SKIP_DIRS = frozenset({"__pycache__", "node_modules"})
_DENY_SPEC = pathspec.GitIgnoreSpec.from_lines(DENY)


@dataclass(frozen=True)
class Skipped:
    path: str
    """Relative to the project root; folders end with ``/``."""
    reason: str


@dataclass
class ProjectFiles:
    included: dict[str, Path] = field(default_factory=dict)
    """Bundle name (relative POSIX path) -> the file whose bytes ship."""
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class _Ignore:
    """One ``.gitignore``: its folder (relative, ``""`` at the top) and its patterns."""

    base: str
    source: str
    spec: pathspec.GitIgnoreSpec

    def check(self, relative: str) -> tuple[bool, str] | None:
        """``(ignored, pattern)`` of the last pattern matching ``relative``, or ``None``."""
        inner = relative[len(self.base) :] if self.base else relative
        result = self.spec.check_file(inner)
        if result.include is None or result.index is None:
            return None
        pattern = self.spec.patterns[result.index]
        return bool(result.include), str(getattr(pattern, "pattern", "?"))


def select(root: Path) -> ProjectFiles:
    """Sort the project's files into shipped and skipped; see the module docstring."""
    root = root.resolve()
    files = ProjectFiles()
    _walk(root, root, "", (), files, {root})
    return files


def _walk(
    root: Path,
    folder: Path,
    prefix: str,
    ignores: tuple[_Ignore, ...],
    files: ProjectFiles,
    seen: set[Path],
) -> None:
    gitignore = folder / GITIGNORE
    if gitignore.is_file():
        lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        source = prefix + GITIGNORE
        ignores = (*ignores, _Ignore(prefix, source, pathspec.GitIgnoreSpec.from_lines(lines)))
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        is_dir = entry.is_dir()  # follows links: a link to a folder is a folder
        relative = prefix + entry.name + ("/" if is_dir else "")
        reason = _own_files(path, entry.name, relative, is_dir) or _denied(relative)
        reason = reason or _ignored(relative, ignores)
        if reason is not None:
            files.skipped.append(Skipped(relative, reason))
            continue
        if entry.is_symlink():
            target = _inside(root, path)
            if target is None:
                files.skipped.append(Skipped(relative, "broken symbolic link"))
                continue
            if is_dir:
                if target in seen:
                    files.skipped.append(Skipped(relative, "link to a folder already shipped"))
                    continue
                seen.add(target)
        if is_dir:
            _walk(root, path, relative, ignores, files, seen)
        elif entry.is_file():
            files.included[relative] = path
        else:
            files.skipped.append(Skipped(relative, "not a regular file"))


_TEST_SETTINGS = frozenset({"pytest.ini", "conftest.py"})
"""Top-level files only pytest reads (`qr init` writes the first)."""


def _own_files(path: Path, name: str, relative: str, is_dir: bool) -> str | None:
    if name.startswith("."):
        return "dot-file (kept out: .env, .git, .qr, tool settings)"
    if is_dir:
        if relative == "tests/":
            return "your tests (not needed at run time)"
        if name in _SKIP_DIRS:
            return "cache or tool folder"
        if (path / "pyvenv.cfg").exists():
            return "virtualenv"
    elif relative in _TEST_SETTINGS:
        return "your tests' settings (not needed at run time)"
    elif name.endswith((".pyc", ".pyo")):
        return "bytecode cache (qr compiles its own)"
    return None


def _denied(relative: str) -> str | None:
    result = _DENY_SPEC.check_file(relative)
    if result.include and result.index is not None:
        pattern = getattr(_DENY_SPEC.patterns[result.index], "pattern", "?")
        return f"looks like a secret ({pattern}); never shipped"
    return None


def _ignored(relative: str, ignores: Sequence[_Ignore]) -> str | None:
    decision: tuple[bool, str, str] | None = None
    for ignore in ignores:  # the top first: a deeper .gitignore has the last word
        found = ignore.check(relative)
        if found is not None:
            decision = (found[0], found[1], ignore.source)
    if decision is not None and decision[0]:
        return f"ignored by {decision[2]} ({decision[1]})"
    return None


def _inside(root: Path, link: Path) -> Path | None:
    """The resolved target of ``link`` when it is inside ``root``; a ``QrError`` when outside."""
    try:
        target = link.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):  # broken, or a loop of links
        return None
    if target != root and root not in target.parents:
        relative = link.relative_to(root).as_posix()
        raise QrError(
            f"{relative} is a symbolic link to {target}, outside the project",
            f"qr build would ship that file from outside {root}. Copy what you need into the "
            f"project, or add {relative} to .gitignore to leave it out of the bundle.",
        )
    return target


def check_needed(files: ProjectFiles, needed: Iterable[str]) -> None:
    """A ``QrError`` when a file the app runs (``needed``: relative paths of the handlers and
    the project modules they import) is left out by a ``.gitignore`` or the deny list: the
    bundle would fail at run time (GitHub's Python template, for one, ignores ``lib/``)."""
    by_choice = [s for s in files.skipped if s.reason.startswith(("ignored by", "looks like"))]
    for relative in sorted(needed):
        for skipped in by_choice:
            if relative == skipped.path or (
                skipped.path.endswith("/") and relative.startswith(skipped.path)
            ):
                raise QrError(
                    f"{relative} is needed by your app but left out of the bundle: "
                    f"{skipped.path} {skipped.reason}",
                    f"un-ignore it (e.g. add !{skipped.path} to the .gitignore that ignores it), "
                    "or rename it; qr build --list shows what ships.",
                )


def imported_files(root: Path) -> set[str]:
    """Relative paths of the project's files loaded in this process (handlers, middleware and
    the modules they import), as ``scan`` left them in ``sys.modules``."""
    root = root.resolve()
    found: set[str] = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        try:
            relative = Path(file).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            continue
        found.add(relative)
    return found
