"""Fixtures shared by the integration tests on a moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qr.runtime.aws._clients import Clients
from tests.integration.lambda_support import moto_clients, moto_server


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server for the module's tests (each test names its own queues and tables)."""
    with moto_server() as url:
        yield url


@pytest.fixture
def clients(moto_url: str) -> Clients:
    """The adapters' ``Clients`` on that moto server."""
    return moto_clients(moto_url)
