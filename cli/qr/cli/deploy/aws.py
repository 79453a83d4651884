"""The AWS side of deploying and operating: one boto3 session, clients, and errors users can act on.

``Aws`` wraps a ``boto3.Session`` that callers may inject (tests pass one pointed at a moto
server; users get the default credential chain). Clients are created with the project's region and
no explicit endpoint, so boto3's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
settings apply unchanged. ``aws_errors`` turns botocore failures into ``QrError`` with a fix:
missing credentials, an unreachable endpoint, access denied, throttling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from qr.cli.errors import QrError

_CREDENTIALS_HINT = (
    "Configure AWS credentials: set AWS_PROFILE to a profile from ~/.aws/config (run "
    "'aws sso login' for SSO profiles), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
)


class Aws:
    """boto3 clients for one region, created lazily and cached."""

    def __init__(self, region: str, session: boto3.Session | None = None) -> None:
        self.region = region
        self.session = session or boto3.Session(region_name=region)
        self._clients: dict[str, Any] = {}
        self._config = Config(retries={"mode": "standard", "max_attempts": 4})

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service,  # type: ignore[call-overload]
                region_name=self.region,
                config=self._config,
            )
        return self._clients[service]

    def check_credentials(self) -> None:
        """Fail early, before Terraform runs, when no credentials can be found."""
        if self.session.get_credentials() is None:
            raise QrError("no AWS credentials found", _CREDENTIALS_HINT)

    def check_region(self) -> None:
        """Reject a region no AWS partition knows (a typo would otherwise fail deep in Terraform)."""
        known: set[str] = set()
        for partition in self.session.get_available_partitions():
            known.update(self.session.get_available_regions("lambda", partition_name=partition))
        if known and self.region not in known:
            raise QrError(
                f"AWS region {self.region!r} does not exist",
                "Set 'region:' in qr.yaml to a region such as us-east-1 or eu-west-1 "
                f"(known: {', '.join(sorted(known)[:8])}, ...).",
            )


def endpoint_note() -> str:
    """' (endpoint http://...)' when AWS_ENDPOINT_URL redirects every client, for messages."""
    url = os.environ.get("AWS_ENDPOINT_URL")
    return f" (endpoint {url})" if url else ""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate botocore failures during ``action`` ("reading the alias") into ``QrError``."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise QrError(f"no AWS credentials found while {action}", _CREDENTIALS_HINT) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise QrError(
            f"could not reach AWS while {action}: {exc}",
            "Check your network connection and the region in qr.yaml; if AWS_ENDPOINT_URL is "
            "set, check that the endpoint is running.",
        ) from None
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"):
            raise QrError(
                f"AWS rejected the credentials while {action}: {message}", _CREDENTIALS_HINT
            ) from None
        if code in ("AccessDenied", "AccessDeniedException"):
            raise QrError(
                f"access denied while {action}: {message}",
                "Use credentials whose IAM policy allows this action (see docs/deploy.md "
                "for the permissions qr needs).",
            ) from None
        raise QrError(
            f"AWS error while {action}: {code}: {message}",
            "Check that the stage is deployed (qr deploy) and the region in qr.yaml is right"
            f"{endpoint_note()}.",
        ) from None
