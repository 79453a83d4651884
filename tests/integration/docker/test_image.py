from __future__ import annotations

from typing import Any

import pytest

from qr.cli.docker.image import HASH_LABEL, BuiltImage, ImageBuilder, ImageSpec
from qr.cli.errors import QrError
from tests.integration.docker.conftest import BASE_IMAGE, CACHE, PYTHON_VERSION

pytestmark = pytest.mark.integration


def test_image_is_reused_while_its_inputs_are_unchanged(
    docker_client: Any, function_image: BuiltImage
) -> None:
    again = ImageBuilder(docker_client, CACHE).ensure(ImageSpec(PYTHON_VERSION, BASE_IMAGE))
    assert again.built is False
    assert again.hash == function_image.hash
    image = docker_client.images.get(function_image.tag)
    assert image.labels[HASH_LABEL] == function_image.hash


def test_image_runs_the_runtime_interface_client(
    docker_client: Any, function_image: BuiltImage
) -> None:
    out = docker_client.containers.run(
        function_image.tag,
        entrypoint=["python3", "-c", "import awslambdaric, sys; print(sys.path[1])"],
        network_mode="none",
        remove=True,
    )
    assert out.decode().strip() == "/var/task"


def test_build_failure_names_the_failing_step(docker_client: Any) -> None:
    # The base image has python 3.11: asking for 3.12 fails at the interpreter check.
    builder = ImageBuilder(docker_client, CACHE)
    with pytest.raises(QrError) as failure:
        builder.ensure(ImageSpec("3.12", BASE_IMAGE))
    assert "failed at Step" in failure.value.message
    assert "RUN" in failure.value.message
    assert "this image has python 3.11 but the project runs python 3.12" in failure.value.hint


def test_missing_base_image_says_how_to_fix(docker_client: Any) -> None:
    builder = ImageBuilder(docker_client, CACHE)
    with pytest.raises(QrError) as failure:
        builder.ensure(ImageSpec("3.11", "qr-test/no-such-image:1"))
    assert "qr-test/no-such-image:1" in failure.value.message
    assert "QR_DOCKER_BASE_IMAGE" in failure.value.hint
