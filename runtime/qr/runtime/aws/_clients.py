"""boto3 clients for the AWS adapters: created on first use, then reused for the container's life.

Nothing here imports boto3 until an adapter makes its first call, so a cold start that only serves
HTTP never pays for botocore (~100 ms). boto3 honours ``AWS_ENDPOINT_URL`` and the
service-specific ``AWS_ENDPOINT_URL_<SERVICE>`` variables, which is how the tests point every
adapter at a moto server. Tests may also pass their own ``factory``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

ClientFactory = Callable[..., Any]
"""``factory(service_name, **kwargs) -> client`` (``boto3.client``'s signature)."""


class Clients:
    def __init__(self, factory: ClientFactory | None = None) -> None:
        self._factory = factory
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, service: str, endpoint_url: str | None = None) -> Any:
        """The client for ``service`` (and endpoint), created once."""
        key = (service, endpoint_url)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._create(service, endpoint_url)
                    self._clients[key] = client
        return client

    def _create(self, service: str, endpoint_url: str | None) -> Any:
        kwargs: dict[str, Any] = {}
        if endpoint_url is not None:
            kwargs["endpoint_url"] = endpoint_url
        if self._factory is not None:
            return self._factory(service, **kwargs)
        import boto3  # lazily: botocore is slow to import and HTTP-only cold starts never need it
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5)
        return boto3.session.Session().client(service, config=config, **kwargs)  # type: ignore[call-overload]


class DynamoTable:
    """What an adapter on one DynamoDB table keeps: the table's name, the clients and a clock."""

    def __init__(
        self, table: str, clients: Clients, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self._clients = clients
        self._clock = clock


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``None`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
