"""What the Lambda tests and bench_lambda share: AWS resources on moto, Lambda's own packages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from qr.runtime.aws._clients import Clients

PROVIDED_BY_LAMBDA = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")
"""boto3 and its dependencies: what every Lambda Python runtime has in /var/runtime."""


def provided_dir(base: Path) -> Path:
    """A folder of links to this environment's boto3 and its dependencies (Lambda's /var/runtime)."""
    provided = base / "provided"
    provided.mkdir()
    site = Path(boto3.__file__).parents[1]
    for package in PROVIDED_BY_LAMBDA:
        for candidate in (site / package, site / f"{package}.py"):
            if candidate.exists():
                (provided / candidate.name).symlink_to(candidate)
    return provided


def create_connections_table(dynamodb: Any, name: str) -> None:
    """The WebSocket connections table as the generated Terraform declares it (pk/sk strings)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create_jobs_table(dynamodb: Any, name: str) -> None:
    """The job state table as the generated Terraform declares it (hash key job_id)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def moto_clients(url: str) -> Clients:
    """The adapters' ``Clients``, with boto3 clients of test credentials pointed at ``url``."""

    def factory(service: str, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", url)
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )

    return Clients(factory)


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free localhost port; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
