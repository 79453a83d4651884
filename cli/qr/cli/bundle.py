"""The Lambda bundle: one deterministic zip with the user's code, qr's runtime and every dependency.

``build_bundle(manifest, stage, out_dir)`` runs these stages:

0. **The project's files** (``qr.cli.project_files.select``), first, so that a symbolic link out
   of the project stops the build before any slow step: everything but ``tests/``, dot-files
   (``.env*``, ``.qr/``, ``.git``), virtualenvs, caches, names that look like secrets (keys,
   certificates, credential files; ``project_files.DENY``) and what the project's
   ``.gitignore`` files ignore.
1. **Runtime requirements.** The third-party packages ``qr.runtime`` imports are found by reading
   its source (every ``import``, lazy ones inside functions included; ``TYPE_CHECKING`` blocks and
   ``try: ... except ImportError`` fallbacks left out), mapped to their distributions and pinned to
   the versions installed here, so the bundle runs the code that was tested. boto3/botocore are
   left out: every Lambda Python runtime provides them.
2. **Dependencies.** Those pins plus the app's own (``requirements.txt``, else ``[project]
   dependencies`` of ``pyproject.toml``) are installed by one ``pip install --platform
   manylinux2014_<arch> --only-binary=:all: --python-version <runtime> --target`` run, for the
   architecture and runtime in qr.yaml. The result is cached under ``.qr/cache/deps/<key>/``, the
   key being a hash of everything that decides pip's answer. A requirement with no matching wheel
   (an sdist-only package, usually) is a ``QrError`` naming it.
3. **Files.** The project's (stage 0), ``qr/runtime`` (minus the dev-only ``testing.py`` and
   ``local/``) and the installed dependencies (minus ``bin/``). Two sources claiming one path is an
   error. Over Lambda's 250 MB unzipped limit is an error listing the biggest folders.
4. **Bytecode.** When this interpreter is the runtime's Python version, every module is compiled
   to an unchecked-hash ``.pyc`` (no timestamp inside, so still reproducible): Lambda's code
   directory is read-only, so without them each cold start compiles everything it imports.
5. **Zip.** Entries sorted by name, a fixed timestamp (1980-01-01), fixed permission bits (0644)
   and compression level: the same inputs give a byte-identical ``bundle.zip``, so a redeploy
   with no change publishes no new Lambda version.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import qr.runtime
from qr.cli import project_files
from qr.cli.errors import QrError
from qr.runtime.local.private import FILE_MODE, private_dir
from qr.runtime.manifest import Manifest

BUNDLE_FILE = "bundle.zip"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
UNZIPPED_LIMIT = 250 * 1024 * 1024
"""Lambda's limit for a function's unzipped code and layers."""
PROVIDED_BY_LAMBDA = frozenset({"boto3", "botocore"})
"""Import names every Lambda Python runtime already has (the runtime imports them lazily)."""
OPTIONAL_NEEDS = {"starlette": ("python-multipart",)}
"""Optional dependencies of the runtime's dependencies that qr relies on: Starlette parses forms
only when python-multipart is installed, and no import in qr.runtime names it."""
DEV_ONLY_RUNTIME = ("testing.py", "local")
"""Parts of ``qr/runtime`` that only run on a developer's machine."""
SELF_DISTRIBUTION = "queue-run"

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_COMPRESSLEVEL = 6
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_NO_WHEEL = re.compile(r"Could not find a version that satisfies the requirement (\S+)")

PipRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class FolderSize:
    """One line of the size report: a top-level folder (or file) of the bundle."""

    name: str
    files: int
    size: int
    """Bytes unzipped."""
    compressed: int


@dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    size: int
    """Bytes of the zip file."""
    unzipped: int
    folders: tuple[FolderSize, ...]
    """Biggest first."""
    architecture: str
    python_version: str
    requirements: tuple[str, ...]
    """What pip installed from: the runtime's pins, then the app's requirements."""
    precompiled: bool
    cached: bool
    """The dependencies came from ``.qr/cache`` (pip did not run)."""

    def report(self) -> list[str]:
        """The size report, one line per top-level folder, biggest first."""
        lines = [
            f"{self.path.name}: {_mb(self.size)} zipped, {_mb(self.unzipped)} unzipped "
            f"(limit {_mb(UNZIPPED_LIMIT)}), python{self.python_version} {self.architecture}"
            + (", precompiled" if self.precompiled else "")
        ]
        lines += [
            f"  {f.name:<32} {f.files:>6} files {_mb(f.size):>10} {_mb(f.compressed):>10} zipped"
            for f in self.folders
        ]
        return lines


def build_bundle(
    manifest: Manifest,
    stage: str,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    pip: PipRunner | None = None,
    precompile: bool | None = None,
    limit: int = UNZIPPED_LIMIT,
) -> Bundle:
    """Build ``out_dir/bundle.zip`` for ``stage``; see the module docstring for the stages.

    ``precompile`` defaults to "when this interpreter matches the runtime's Python version".
    """
    config = manifest.config
    config.stage(stage)  # an unknown stage is the user's mistake: say so before any work
    root = manifest.root
    project = project_files.select(root)
    project_files.check_needed(project, project_files.imported_files(root))
    python_version = config.python_version
    runtime_dir = Path(qr.runtime.__file__).parent
    runtime_pins = runtime_requirements(runtime_dir)
    app_lines = app_requirements(root)
    deps_dir, cached = install_dependencies(
        runtime_pins,
        app_lines,
        architecture=config.architecture,
        python_version=python_version,
        cache_dir=cache_dir or root / ".qr" / "cache" / "deps",
        pip=pip or run_pip,
    )
    files = _merge(
        ("your project", project.included),
        ("qr's runtime", dict(runtime_files(runtime_dir))),
        ("the dependencies", dict(dependency_files(deps_dir))),
    )
    _check_size(files, limit)
    if precompile is None:
        precompile = python_version == "{}.{}".format(*sys.version_info[:2])
    private_dir(out_dir)  # .qr/build/<stage> or .qr/docker: 0700, the zip 0600
    path = out_dir / BUNDLE_FILE
    folders = write_zip(path, files, precompile=precompile)
    data = path.read_bytes()
    requirements = (*runtime_pins, *app_lines)
    return Bundle(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        unzipped=sum(f.size for f in folders),
        folders=folders,
        architecture=config.architecture,
        python_version=python_version,
        requirements=requirements,
        precompiled=precompile,
        cached=cached,
    )


# -- 1. what the runtime needs ------------------------------------------------------------------


def runtime_requirements(runtime_dir: Path) -> tuple[str, ...]:
    """``name==version`` for each distribution ``qr.runtime`` imports (sorted)."""
    names = set()
    for path in _runtime_sources(runtime_dir):
        names |= imported_names(path.read_text(encoding="utf-8"), str(path))
    names -= {"qr", "__future__", *sys.stdlib_module_names, *PROVIDED_BY_LAMBDA}
    owners = importlib.metadata.packages_distributions()
    pins: set[str] = set()
    for name in sorted(names):
        distributions = owners.get(name)
        if not distributions:
            raise QrError(
                f"qr.runtime imports {name!r}, which no installed distribution provides",
                "Reinstall qr (pip install --force-reinstall queue-run); this is a packaging bug.",
            )
        for distribution in (*distributions, *OPTIONAL_NEEDS.get(name, ())):
            pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
    return tuple(sorted(pins, key=str.lower))


def imported_names(source: str, filename: str = "<source>") -> set[str]:
    """Top-level names of the modules ``source`` imports, lazy imports included.

    Imports under ``if TYPE_CHECKING:`` and inside ``try:`` blocks that catch ImportError (optional
    dependencies) are not needed at run time and are left out.
    """
    names: set[str] = set()

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Try) and _catches_import_error(node):
                visit(node.handlers)
                visit(node.orelse)
                visit(node.finalbody)
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            visit(ast.iter_child_nodes(node))

    visit(ast.parse(source, filename).body)
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(
            isinstance(k, ast.Name) and k.id in ("ImportError", "ModuleNotFoundError")
            for k in kinds
        ):
            return True
    return False


def _runtime_sources(runtime_dir: Path) -> Iterator[Path]:
    for relative, path in runtime_files(runtime_dir):
        if relative.endswith(".py"):
            yield path


# -- 2. dependencies ----------------------------------------------------------------------------


def app_requirements(root: Path) -> list[str]:
    """The app's own requirement lines (``queue-run`` itself left out: its runtime is added).

    From ``requirements.txt`` (relative paths in ``-r``/``-c``/``-e`` lines made absolute), else
    ``[project] dependencies`` of ``pyproject.toml``, else none.
    """
    requirements = root / "requirements.txt"
    if requirements.is_file():
        lines = _requirement_lines(requirements.read_text(encoding="utf-8"))
        return [_absolute(line, root) for line in lines if not _is_self(line)]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise QrError(
                f"pyproject.toml is not valid TOML: {exc}", "Fix the file, then build again."
            ) from None
        dependencies = data.get("project", {}).get("dependencies", [])
        if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
            raise QrError(
                "pyproject.toml: [project] dependencies must be a list of requirement strings",
                'Write dependencies = ["httpx>=0.27"].',
            )
        return [d.strip() for d in dependencies if not _is_self(d)]
    return []


def _is_self(line: str) -> bool:
    match = _REQUIREMENT_NAME.match(line)
    if match is None:
        return False
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() == SELF_DISTRIBUTION


def _absolute(line: str, root: Path) -> str:
    option, _, value = line.partition(" ")
    if option in ("-r", "-c", "-e", "--requirement", "--constraint", "--editable") and (
        value.strip().startswith(".")
    ):
        return f"{option} {(root / value.strip()).resolve()}"
    return line


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split(" #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def install_dependencies(
    runtime_pins: Sequence[str],
    app_lines: Sequence[str],
    *,
    architecture: str,
    python_version: str,
    cache_dir: Path,
    pip: PipRunner,
) -> tuple[Path, bool]:
    """Install into a cached directory; returns it and whether it was already there."""
    platform = PLATFORMS[architecture]
    key = hashlib.sha256(
        json.dumps(
            {
                "platform": platform,
                "python": python_version,
                "requirements": [*runtime_pins, *app_lines],
                "precompiled-for": sys.version,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    target = cache_dir / f"{platform}-py{python_version}-{key}"
    if (target / ".complete").is_file():
        return target, True
    private_dir(cache_dir)  # .qr/cache/deps: 0700
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cache_dir))
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=work, delete=False) as handle:
            handle.write("\n".join([*runtime_pins, *app_lines]) + "\n")
        args = [
            "install",
            "--quiet",
            "--no-compile",
            "--disable-pip-version-check",
            "--no-input",
            "--platform",
            platform,
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--target",
            str(work / "site"),
            "-r",
            handle.name,
        ]
        result = pip(args)
        if result.returncode != 0:
            raise _pip_error(result.stderr or result.stdout, platform, python_version)
        if python_version == "{}.{}".format(*sys.version_info[:2]):
            _compile_tree(work / "site")
        (work / "site" / ".complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        (work / "site").rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target, False


def run_pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip (the one qr is installed with)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


def _pip_error(output: str, platform: str, python_version: str) -> QrError:
    missing = sorted(set(_NO_WHEEL.findall(output)))
    if missing:
        return QrError(
            f"no wheel for {', '.join(missing)} on {platform} / Python {python_version}",
            "Lambda cannot build from source, so every dependency must come as a wheel (or be "
            "pure Python with a wheel). These look sdist-only for this platform, or the name or "
            "version does not exist: pin a version that publishes manylinux wheels, switch "
            "architecture in qr.yaml, or vendor the code into your project.",
        )
    tail = "\n".join(line for line in output.splitlines() if "Location 'file:" not in line)
    return QrError(
        "pip could not install the bundle's dependencies",
        f"pip said:\n{tail.strip()[-2000:]}\nFix requirements.txt (or pyproject.toml) and build again.",
    )


def _compile_tree(site: Path) -> None:
    """Unchecked-hash ``.pyc`` for every module (deterministic: no timestamps inside)."""
    for path in sorted(site.rglob("*.py")):
        _compile(path, path)


def _compile(source: Path, target_source: Path) -> Path | None:
    """Write ``target_source``'s cached bytecode compiled from ``source``; ``None`` if it fails."""
    import py_compile

    cfile = Path(importlib.util.cache_from_source(str(target_source)))
    try:
        py_compile.compile(
            str(source),
            cfile=str(cfile),
            dfile=target_source.name,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError:
        return None  # a file Python cannot compile is shipped as source; importing it will say why
    return cfile


# -- 3. files -----------------------------------------------------------------------------------


def runtime_files(runtime_dir: Path) -> Iterator[tuple[str, Path]]:
    """``qr/runtime`` as it ships: without dev-only modules and caches."""
    for path in sorted(runtime_dir.rglob("*")):
        relative = path.relative_to(runtime_dir)
        if (
            not path.is_file()
            or relative.parts[0] in DEV_ONLY_RUNTIME
            or "__pycache__" in relative.parts
            or path.suffix in (".pyc", ".pyo")
        ):
            continue
        yield f"qr/runtime/{relative.as_posix()}", path


def dependency_files(site: Path) -> Iterator[tuple[str, Path]]:
    """The installed dependencies (console scripts in bin/ are of no use in Lambda)."""
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if not path.is_file() or relative.parts[0] in ("bin", ".complete"):
            continue
        yield relative.as_posix(), path


def _merge(*sources: tuple[str, dict[str, Path]]) -> dict[str, Path]:
    merged: dict[str, Path] = {}
    owner: dict[str, str] = {}
    for label, files in sources:
        for name, path in files.items():
            if name in merged:
                raise QrError(
                    f"{name} is in both {owner[name]} and {label}",
                    f"Rename or remove {name.split('/')[0]} in your project: the bundle has one "
                    "folder for everything on sys.path.",
                )
            merged[name] = path
            owner[name] = label
    return merged


def _check_size(files: dict[str, Path], limit: int) -> None:
    sizes: dict[str, int] = {}
    for name, path in files.items():
        top = name.split("/")[0]
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    total = sum(sizes.values())
    if total > limit:
        biggest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        listing = ", ".join(f"{name} {_mb(size)}" for name, size in biggest)
        raise QrError(
            f"the bundle is {_mb(total)} unzipped, over Lambda's {_mb(limit)} limit",
            f"Biggest folders: {listing}. Drop dependencies you do not use, or move large data "
            "to S3.",
        )


# -- 4 + 5. bytecode and zip --------------------------------------------------------------------


def write_zip(path: Path, files: dict[str, Path], *, precompile: bool) -> tuple[FolderSize, ...]:
    """Write the zip deterministically; returns the size per top-level folder."""
    entries: dict[str, Path] = dict(files)
    with tempfile.TemporaryDirectory(prefix="qr-pyc-") as scratch:
        if precompile:
            entries.update(_compile_entries(files, Path(scratch)))
        elif any(name.endswith(".pyc") for name in entries):
            entries = {n: p for n, p in entries.items() if not n.endswith(".pyc")}
        partial = path.with_name(path.name + ".partial")
        totals: dict[str, list[int]] = {}
        with zipfile.ZipFile(partial, "w") as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, _ZIP_TIME)
                info.external_attr = _FILE_MODE
                info.create_system = 3
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name].read_bytes(), compresslevel=_COMPRESSLEVEL)
                top = name.split("/")[0]
                total = totals.setdefault(top, [0, 0, 0])
                total[0] += 1
                total[1] += info.file_size
                total[2] += info.compress_size
        partial.chmod(FILE_MODE)
        partial.replace(path)
    folders = [FolderSize(name, *total) for name, total in totals.items()]
    return tuple(sorted(folders, key=lambda f: (-f.size, f.name)))


def _compile_entries(files: dict[str, Path], scratch: Path) -> dict[str, Path]:
    """Bytecode for the project's and the runtime's modules (dependencies come compiled)."""
    compiled: dict[str, Path] = {}
    for name, path in files.items():
        if not name.endswith(".py"):
            continue
        cache_name = importlib.util.cache_from_source(name)
        if cache_name in files:
            continue
        cfile = _compile(path, scratch / name)
        if cfile is not None:
            compiled[cache_name] = cfile
    return compiled


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MB"
