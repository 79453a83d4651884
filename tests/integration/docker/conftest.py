"""Docker fixtures: a real engine and the local base image that ``scripts/docker-up`` builds.

Locally, tests skip (saying how to start the engine) when Docker is not running. In CI
(``CI=true``) ``.ci/run`` has started it (and the bridge engine of ``scripts/docker-bridge-up``), so a missing engine or image fails the tests instead:
a skip there would hide that the Docker path is untested.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.cli.docker.engine import connect
from qr.cli.docker.image import BuiltImage, ImageBuilder, ImageSpec
from qr.cli.errors import QrError

REPO = Path(__file__).resolve().parents[3]
BASE_IMAGE = os.environ.get("QR_TEST_BASE_IMAGE", "qr-test/python:3.11")
PYTHON_VERSION = "3.11"
CACHE = REPO / ".qr-ci" / "docker-cache"


BRIDGE_DOCKER_HOST = os.environ.get("QR_BRIDGE_DOCKER_HOST", "unix:///run/qr-bridge-docker.sock")
"""The engine with bridge networking that ``scripts/docker-bridge-up`` starts."""


def _unavailable(reason: str, script: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Docker is required in CI: {reason}")
    pytest.skip(f"Docker is not available ({reason}); start it with {script}")


def _client(environment: dict[str, str] | None, script: str) -> Iterator[Any]:
    try:
        client = connect(environment)
    except QrError as exc:
        _unavailable(exc.message, script)
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        _unavailable(f"the base image {BASE_IMAGE} is missing", script)
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    yield from _client(None, "scripts/docker-up")


@pytest.fixture(scope="session")
def bridge_docker_client() -> Iterator[Any]:
    yield from _client({"DOCKER_HOST": BRIDGE_DOCKER_HOST}, "scripts/docker-bridge-up")


@pytest.fixture(scope="session")
def function_image(docker_client: Any) -> BuiltImage:
    """The function image (base + awslambdaric) for the local base image's Python."""
    builder = ImageBuilder(docker_client, CACHE)
    return builder.ensure(ImageSpec(PYTHON_VERSION, BASE_IMAGE))
