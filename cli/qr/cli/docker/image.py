"""The function image: a base image plus the Lambda runtime interface client, built once.

Stages: resolve the base image (local, else pulled) → install ``awslambdaric`` (and the project's
extra requirements, if given) on the host with ``pip install --target`` for the image's platform
(``--only-binary=:all: --platform manylinux2014_<arch> --python-version X.Y``), so the build needs
no network and works with any base image that has a ``python3`` → a Dockerfile that copies those
trees in and checks that the interpreter can import them → ``docker build`` through the SDK.

The image is tagged (``qr-dev/function:<hash>``) and labelled with a hash of everything that goes into it (base image id,
Python version, architecture, packages); an image with that hash is reused, so the build runs
only when dependencies change. The code is not in the image: the pool bind-mounts it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qr.cli.errors import QrError

IMAGE_FORMAT = "1"
"""Bump when the Dockerfile below changes shape, so old images are not reused."""
HASH_LABEL = "dev.qr.image-hash"
REPOSITORY = "qr-dev/function"
"""Images depend only on their inputs, not on the project: projects with equal inputs share one."""
RIC_PACKAGES = ("awslambdaric",)
ENTRY_POINT = ("python3", "-m", "awslambdaric")
TASK_ROOT = "/var/task"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def default_base_image(python_version: str) -> str:
    """The AWS Lambda Python image of the project's runtime, unless ``QR_DOCKER_BASE_IMAGE``."""
    return (
        os.environ.get("QR_DOCKER_BASE_IMAGE") or f"public.ecr.aws/lambda/python:{python_version}"
    )


def host_architecture() -> str:
    """``x86_64`` or ``aarch64`` (the Linux names pip's platform tags use)."""
    machine = platform.machine().lower()
    return "aarch64" if machine in ("arm64", "aarch64") else "x86_64"


@dataclass(frozen=True)
class ImageSpec:
    python_version: str
    """``3.12``: the interpreter of the base image (wheels are chosen for it)."""
    base_image: str
    architecture: str = field(default_factory=host_architecture)
    requirements: tuple[str, ...] = ()
    """Extra requirement lines installed under ``/opt/qr/deps`` (empty when the code brings them)."""


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    hash: str
    built: bool
    """``False`` when an image with the same hash was reused."""


class ImageBuilder:
    """Builds (or reuses) the function image. IO is injected: docker client, cache dir, runner."""

    def __init__(
        self,
        client: Any,
        cache_dir: Path | None = None,
        *,
        run: Runner = _run,
        python: str = sys.executable,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.client = client
        self.cache_dir = cache_dir or default_cache_dir()
        self.run = run
        self.python = python
        self.log = log

    def ensure(self, spec: ImageSpec) -> BuiltImage:
        base_id = self._base_image_id(spec.base_image)
        digest = image_hash(spec, base_id)
        tag = f"{REPOSITORY}:{digest[:16]}"
        if self.client.images.list(name=REPOSITORY, filters={"label": f"{HASH_LABEL}={digest}"}):
            return BuiltImage(tag, digest, built=False)
        self.log(f"building image {tag} from {spec.base_image}")
        ric = self._install(spec, RIC_PACKAGES)
        deps = self._install(spec, spec.requirements) if spec.requirements else None
        context = _context(dockerfile(spec), {"ric": ric, "deps": deps})
        self._build(context, tag, digest)
        return BuiltImage(tag, digest, built=True)

    def _base_image_id(self, name: str) -> str:
        import docker.errors

        try:
            return str(self.client.images.get(name).id)
        except docker.errors.ImageNotFound:
            pass
        self.log(f"pulling base image {name}")
        try:
            return str(self.client.images.pull(name).id)
        except docker.errors.DockerException as exc:
            raise QrError(
                f"base image {name!r} is not available locally and could not be pulled: {exc}",
                "Pull it yourself (`docker pull IMAGE`), or point QR_DOCKER_BASE_IMAGE at an "
                "image you have (any image with python3 of the project's runtime version, such "
                "as python:3.12-slim).",
            ) from None

    def _install(self, spec: ImageSpec, packages: Sequence[str]) -> Path:
        """``pip install --target`` for the image's platform, cached by its inputs."""
        key = hashlib.sha256(
            json.dumps([spec.python_version, spec.architecture, list(packages)]).encode()
        ).hexdigest()[:16]
        target = self.cache_dir / f"site-{spec.python_version}-{spec.architecture}-{key}"
        if (target / ".complete").exists():
            return target
        self.log(f"downloading wheels for python {spec.python_version} ({spec.architecture})")
        partial = target.with_name(target.name + ".partial")
        _remove(partial)
        args = [
            self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(partial), "--only-binary=:all:",
            "--platform", f"manylinux2014_{spec.architecture}",
            "--python-version", spec.python_version, "--implementation", "cp",
            *packages,
        ]  # fmt: skip
        result = self.run(args)
        if result.returncode != 0:
            raise QrError(
                f"could not download wheels for the container ({', '.join(packages)})",
                f"pip said:\n{_tail(result.stderr or result.stdout)}\n"
                "Each package needs a manylinux wheel for "
                f"python {spec.python_version} on {spec.architecture}; check the names and "
                "your network or pip index settings.",
            )
        (partial / ".complete").write_text("ok\n")
        _remove(target)
        partial.rename(target)
        return target

    def _build(self, context: bytes, tag: str, digest: str) -> None:
        step = "(before the first step)"
        output: list[str] = []
        stream: Iterable[Mapping[str, Any]] = self.client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            labels={HASH_LABEL: digest},
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            decode=True,
        )
        error = ""
        for chunk in stream:  # read to the end (even after an error) so the connection closes
            text = str(chunk.get("stream", ""))
            for line in text.splitlines():
                if error:
                    break
                if line.startswith("Step "):
                    step, output = line, []
                elif line.strip():
                    output.append(line)
            if "error" in chunk and not error:
                error = str(chunk.get("error", "")).strip() or "unknown error"
        if error:
            raise QrError(
                f"building the container image failed at {step}",
                f"{_tail(chr(10).join([*output, error]))}\n"
                "Fix the cause above (a base image whose python3 is not the project's "
                "runtime version is the usual one: set QR_DOCKER_BASE_IMAGE or `runtime:` "
                "in qr.yaml), then run the command again.",
            )


def image_hash(spec: ImageSpec, base_id: str) -> str:
    data = {
        "format": IMAGE_FORMAT,
        "base": base_id,
        "python": spec.python_version,
        "arch": spec.architecture,
        "ric": list(RIC_PACKAGES),
        "requirements": list(spec.requirements),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def dockerfile(spec: ImageSpec) -> str:
    major, minor = spec.python_version.split(".")
    check = (
        "import sys; v = sys.version_info[:2]; "
        f"assert v == ({major}, {minor}), "
        f"'this image has python %d.%d but the project runs python {spec.python_version}' % v; "
        "import awslambdaric, runtime_client"
    )
    path = f"{TASK_ROOT}:/opt/qr/deps:/opt/qr/ric"
    lines = [
        f"FROM {spec.base_image}",
        "COPY ric/ /opt/qr/ric/",
        *(["COPY deps/ /opt/qr/deps/"] if spec.requirements else []),
        f"ENV PYTHONPATH={path} LAMBDA_TASK_ROOT={TASK_ROOT} "
        "PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1",
        f"RUN {json.dumps(['python3', '-c', check])}",
        f"WORKDIR {TASK_ROOT}",
        f"ENTRYPOINT {json.dumps(list(ENTRY_POINT))}",
    ]
    return "\n".join(lines) + "\n"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qr" / "docker"


def _context(dockerfile_text: str, trees: Mapping[str, Path | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile_text.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, tree in trees.items():
            if tree is not None:
                tar.add(tree, arcname=name, filter=_skip_marker)
    return buf.getvalue()


def _skip_marker(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name.endswith("/.complete") else info


def _remove(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
