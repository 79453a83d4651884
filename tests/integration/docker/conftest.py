"""Docker fixtures: a real engine and the local base image that ``scripts/docker-up`` builds.

Locally, tests skip (saying how to start the engine) when Docker is not running. In CI
(``CI=true``) ``.ci/run`` has started it, so a missing engine or image fails the tests instead:
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


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Docker is required in CI: {reason}")
    pytest.skip(f"Docker is not available ({reason}); start it with scripts/docker-up")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = connect()
    except QrError as exc:
        _unavailable(exc.message)
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        _unavailable(f"the base image {BASE_IMAGE} is missing")
    yield client
    client.close()


@pytest.fixture(scope="session")
def function_image(docker_client: Any) -> BuiltImage:
    """The function image (base + awslambdaric) for the local base image's Python."""
    builder = ImageBuilder(docker_client, CACHE)
    return builder.ensure(ImageSpec(PYTHON_VERSION, BASE_IMAGE))
