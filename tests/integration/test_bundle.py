"""The Lambda bundle, built for real: pip from PyPI (cached per test session), zips read back."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qr.cli.bundle import Bundle, build_bundle
from qr.cli.errors import QrError
from qr.runtime.manifest import scan
from tests.conftest import MakeProject

pytestmark = pytest.mark.integration

LOCAL_PYTHON = "python{}.{}".format(*sys.version_info[:2])
ELF_MACHINE = {"x86_64": 62, "arm64": 183}

APP = {
    "api/index.py": "def get():\n    return {'ok': True}\n",
    "queues/emails.py": "def handler(payload):\n    pass\n",
    "lib/__init__.py": "",
    "lib/util.py": "X = 1\n",
    "tests/test_app.py": "def test_x():\n    pass\n",
    ".env": "SECRET=1\n",
    ".env.local": "SECRET=2\n",
    ".qr/state.json": "{}\n",
    ".git/HEAD": "ref\n",
    ".venv/pyvenv.cfg": "home = /usr\n",
    "venv/pyvenv.cfg": "home = /usr\n",
    "venv/lib/site.py": "\n",
    "api/__pycache__/index.cpython-311.pyc": "junk",
}


@pytest.fixture(scope="module")
def deps_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dependency cache for the module: pip runs once per distinct requirement set."""
    return tmp_path_factory.mktemp("deps-cache")


def _yaml(architecture: str = "x86_64", runtime: str = LOCAL_PYTHON) -> str:
    return f"name: demo\nruntime: {runtime}\narchitecture: {architecture}\n"


def build(root: Path, out: Path, cache: Path, **options: object) -> Bundle:
    return build_bundle(scan(root), "production", out, cache_dir=cache, **options)  # type: ignore[arg-type]


def test_bundle_contents_and_excludes(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    root = make_project({**APP, "qr.yaml": _yaml()})
    bundle = build(root, tmp_path / "out", deps_cache)
    names = zipfile.ZipFile(bundle.path).namelist()
    assert bundle.path == tmp_path / "out" / "bundle.zip"
    assert {"qr.yaml", "api/index.py", "queues/emails.py", "lib/util.py"} <= set(names)
    assert "qr/runtime/manifest.py" in names
    assert any(n.startswith("starlette/") or n.startswith("cronsim/") for n in names)
    leaked = [
        n
        for n in names
        if n.startswith(
            ("tests/", ".", "venv/", "qr/cli", "qr/runtime/testing", "qr/runtime/local/")
        )
        or n.startswith("bin/")
        or "/.env" in n
    ]
    assert leaked == []
    # precompiled: the local interpreter is the runtime's Python version
    assert bundle.precompiled
    tag = sys.implementation.cache_tag
    stale = zipfile.ZipFile(bundle.path).read("api/__pycache__/index.cpython-311.pyc")
    assert stale != b"junk"  # compiled afresh, the project's own cache was not copied
    assert f"qr/runtime/__pycache__/manifest.{tag}.pyc" in names
    assert f"api/__pycache__/index.{tag}.pyc" in names
    # the size report covers every top-level folder, biggest first
    assert sum(f.files for f in bundle.folders) == len(names)
    assert bundle.folders == tuple(sorted(bundle.folders, key=lambda f: (-f.size, f.name)))
    report = "\n".join(bundle.report())
    assert "qr " in report and "unzipped" in report
    info = zipfile.ZipFile(bundle.path).infolist()
    assert {i.date_time for i in info} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in info} == {0o100644}
    assert [i.filename for i in info] == sorted(i.filename for i in info)


def test_same_inputs_give_a_byte_identical_zip(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    root = make_project({**APP, "qr.yaml": _yaml()})
    first = build(root, tmp_path / "a", tmp_path / "fresh-cache")  # pip runs
    assert not first.cached
    for path in root.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))  # mtimes do not matter
    second = build(root, tmp_path / "b", tmp_path / "fresh-cache")  # from the cache
    assert second.cached
    third = build(root, tmp_path / "c", deps_cache)  # another cache, installed separately
    assert first.path.read_bytes() == second.path.read_bytes() == third.path.read_bytes()
    assert first.sha256 == second.sha256 == third.sha256

    (root / "lib" / "util.py").write_text("X = 2\n")
    changed = build(root, tmp_path / "d", deps_cache)
    assert changed.sha256 != first.sha256


def test_native_wheels_follow_the_architecture(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    """markupsafe ships a small C extension as manylinux wheels for both architectures."""
    files = {
        "api/index.py": "def get():\n    return 'x'\n",
        "requirements.txt": "markupsafe==3.0.3\n",
    }
    for architecture, runtime in (("arm64", "python3.12"), ("x86_64", LOCAL_PYTHON)):
        root = make_project({**files, "qr.yaml": _yaml(architecture, runtime)})
        bundle = build(root, tmp_path / architecture, deps_cache)
        archive = zipfile.ZipFile(bundle.path)
        native = [
            n
            for n in archive.namelist()
            if n.startswith("markupsafe/_speedups.") and n.endswith(".so")
        ]
        assert len(native) == 1, native
        machine = int.from_bytes(archive.read(native[0])[18:20], "little")  # ELF e_machine
        assert machine == ELF_MACHINE[architecture]
        assert ("aarch64" if architecture == "arm64" else "x86_64") in native[0]
        assert "markupsafe==3.0.3" in bundle.requirements
        assert bundle.precompiled == (runtime == LOCAL_PYTHON)

    # the x86_64 build runs here: its native module loads from the extracted bundle alone
    extracted = tmp_path / "extracted"
    zipfile.ZipFile(tmp_path / "x86_64" / "bundle.zip").extractall(extracted)
    code = "import markupsafe._speedups as s, markupsafe; print(markupsafe.escape('<a>'))"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = ['{extracted}']; {code}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "&lt;a&gt;"


def test_sdist_only_dependency_is_named(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    """docopt 0.6.2 was only ever published as an sdist."""
    root = make_project(
        {**APP, "qr.yaml": _yaml("arm64", "python3.12"), "requirements.txt": "docopt==0.6.2\n"}
    )
    with pytest.raises(QrError) as info:
        build(root, tmp_path / "out", deps_cache)
    assert "docopt==0.6.2" in info.value.message
    assert "manylinux2014_aarch64" in info.value.message
    assert "wheel" in info.value.hint
    assert not (tmp_path / "out" / "bundle.zip").exists()


def test_over_the_size_limit_fails_clearly(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    root = make_project({**APP, "qr.yaml": _yaml(), "data/blob.txt": "x" * 50_000})
    with pytest.raises(QrError) as info:
        build(root, tmp_path / "out", deps_cache, limit=40_000)
    assert "over Lambda's" in info.value.message
    assert "data" in info.value.hint


def test_a_project_folder_shadowing_a_dependency_is_an_error(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    root = make_project({**APP, "qr.yaml": _yaml(), "cronsim/__init__.py": ""})
    with pytest.raises(QrError) as info:
        build(root, tmp_path / "out", deps_cache)
    assert "cronsim/__init__.py" in info.value.message
    assert "your project" in info.value.message


def test_gitignore_deny_list_and_links_decide_what_ships(
    make_project: MakeProject, tmp_path: Path, deps_cache: Path
) -> None:
    root = make_project(
        {
            "qr.yaml": _yaml(),
            "api/index.py": "def get():\n    return {}\n",
            ".gitignore": "secrets.json\n*.log\ndata/\n!data/keep.txt\nconfig/*.json\n",
            "secrets.json": "{}",
            "lib/__init__.py": "",
            "lib/real.py": "X = 1\n",
            "lib/debug.log": "x",
            "lib/.gitignore": "!debug.log\ngenerated/\n",
            "lib/generated/out.py": "",
            "data/keep.txt": "no: its folder is ignored",
            "config/app.json": "{}",
            "config/.gitignore": "!public.json\n",
            "config/public.json": "{}",
            # no .gitignore names these: the deny list does
            "server.pem": "-----BEGIN PRIVATE KEY-----",
            "certs/tls.key": "k",
            "id_rsa": "k",
            "deploy/id_ed25519.pub": "k",
            "creds/credentials": "[default]",
            "prod.tfvars": "password = 1",
            "store.p12": "k",
        }
    )
    (root / "lib" / "alias.py").symlink_to("real.py")  # inside the project: ships
    (root / "lib_link").symlink_to(root / "lib", target_is_directory=True)
    bundle = build(root, tmp_path / "out", deps_cache)
    names = set(zipfile.ZipFile(bundle.path).namelist())
    assert names >= {
        "qr.yaml",
        "api/index.py",
        "lib/real.py",
        "lib/alias.py",
        "lib/debug.log",  # re-included by lib/.gitignore
        "config/public.json",  # re-included by config/.gitignore
        "lib_link/real.py",
    }
    for left_out in (
        "secrets.json",
        "lib/generated/out.py",
        "data/keep.txt",  # git never re-includes a file inside an ignored folder
        "config/app.json",
        "server.pem",
        "certs/tls.key",
        "id_rsa",
        "deploy/id_ed25519.pub",
        "creds/credentials",
        "prod.tfvars",
        "store.p12",
        ".gitignore",
    ):
        assert left_out not in names, left_out
    assert zipfile.ZipFile(bundle.path).read("lib/alias.py") == b"X = 1\n"


def test_a_link_out_of_the_project_is_refused_before_pip_runs(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"qr.yaml": _yaml(), "api/index.py": "def get():\n    return {}\n"})
    (root / "lib").mkdir()
    (root / "lib" / "passwd").symlink_to("/etc/passwd")

    def no_pip(args: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran before the project's files were checked")

    with pytest.raises(QrError) as info:
        build(root, tmp_path / "out", tmp_path / "cache", pip=no_pip)
    assert info.value.message == (
        "lib/passwd is a symbolic link to /etc/passwd, outside the project"
    )
    assert ".gitignore" in info.value.hint
    assert not (tmp_path / "out" / "bundle.zip").exists()
    (root / "lib" / "passwd").unlink()
    (root / "lib" / "home").symlink_to(Path.home(), target_is_directory=True)
    with pytest.raises(QrError) as folder:
        build(root, tmp_path / "out", tmp_path / "cache", pip=no_pip)
    home = Path.home().resolve()
    assert folder.value.message == f"lib/home is a symbolic link to {home}, outside the project"


def test_code_the_app_imports_cannot_be_ignored(make_project: MakeProject, tmp_path: Path) -> None:
    # GitHub's Python .gitignore template ignores lib/: the bundle would miss the app's code
    root = make_project(
        {
            "qr.yaml": _yaml(),
            ".gitignore": "lib/\n",
            "api/index.py": "from lib.util import X\n\ndef get():\n    return {'x': X}\n",
            "lib/__init__.py": "",
            "lib/util.py": "X = 1\n",
        }
    )

    def no_pip(args: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran before the project's files were checked")

    with pytest.raises(QrError) as info:
        build(root, tmp_path / "out", tmp_path / "cache", pip=no_pip)
    assert info.value.message == (
        "lib/__init__.py is needed by your app but left out of the bundle: "
        "lib/ ignored by .gitignore (lib/)"
    )
    assert "!lib/" in info.value.hint
