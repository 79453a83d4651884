"""``qr domain add|remove|list``: a custom domain for a stage (HTTP on it, WebSocket on ``ws.``).

``add`` records ``stages.<stage>.domain`` (and ``zone``) in qr.yaml, keeping its comments, then
deploys. The rendered Terraform requests one ACM certificate (DNS validation) for the domain and
``ws.<domain>``, and creates the API Gateway domain names, mappings and records:

* with a Route53 zone (``--zone``), Terraform creates every record and waits for the certificate;
* without one, the first apply creates only the certificate; qr prints the validation records from
  the ``dns_records`` output, waits (spinner, ``--timeout``) until ACM issues the certificate, then
  deploys again with ``domain_certificate_ready = true`` (``qr deploy`` sets it from then on, see
  ``certificate_ready``) and prints the CNAME records pointing the names at API Gateway.

``list`` reads the certificate status from ACM and each domain name's status and API mappings from
API Gateway, for every stage with a domain.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws, aws_errors, error_code
from qr.cli.deploy.yamledit import remove_stage_keys, set_stage_values
from qr.cli.errors import QrError
from qr.runtime.config import CONFIG_FILE, DOMAIN_RE, load_config

READY_VARIABLE = "domain_certificate_ready"
READY_FILE = "qr_domain.auto.tfvars.json"
ZONE_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")

Deploy = Callable[[], dict[str, Any]]
"""Runs ``qr deploy`` for the stage (with the current qr.yaml) and returns the outputs."""


def find_certificate(aws: Aws, domain: str) -> dict[str, Any] | None:
    """The newest ACM certificate whose primary name is ``domain`` (described), or ``None``."""
    acm = aws.client("acm")
    newest: dict[str, Any] | None = None
    with aws_errors(f"looking up the certificate of {domain}"):
        for page in acm.get_paginator("list_certificates").paginate(
            Includes={"keyTypes": ["RSA_2048", "EC_prime256v1", "EC_secp384r1", "RSA_4096"]}
        ):
            for summary in page.get("CertificateSummaryList", []):
                if summary.get("DomainName") != domain:
                    continue
                described = acm.describe_certificate(CertificateArn=summary["CertificateArn"])
                certificate = dict(described["Certificate"])
                if newest is None or str(certificate.get("CreatedAt", "")) > str(
                    newest.get("CreatedAt", "")
                ):
                    newest = certificate
    return newest


def certificate_ready(aws: Aws, terraform_dir: Path, domain: str | None) -> bool | None:
    """Write ``domain_certificate_ready`` for Terraform when the configuration declares it."""
    declares = any(
        f'variable "{READY_VARIABLE}"' in path.read_text(encoding="utf-8")
        for path in terraform_dir.glob("*.tf")
    )
    if not declares or domain is None:
        return None
    certificate = find_certificate(aws, domain)
    ready = certificate is not None and certificate.get("Status") == "ISSUED"
    (terraform_dir / READY_FILE).write_text(json.dumps({READY_VARIABLE: ready}) + "\n")
    return ready


def record_domain(root: Path, stage: str, domain: str, zone: str | None) -> None:
    if not DOMAIN_RE.match(domain):
        raise QrError(
            f"{domain!r} is not a domain name qr can use",
            "Use a lower-case host name such as api.example.com (the WebSocket API gets "
            "ws.api.example.com).",
        )
    if zone is not None and not ZONE_RE.match(zone):
        raise QrError(
            f"{zone!r} is not a Route53 hosted zone id",
            "Zone ids look like Z0123456789ABCDEFGHIJ: aws route53 list-hosted-zones-by-name "
            "--dns-name example.com",
        )
    values = {"domain": domain} | ({"zone": zone} if zone else {})
    path = root / CONFIG_FILE
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(set_stage_values(text, stage, values), encoding="utf-8")


def forget_domain(root: Path, stage: str) -> str | None:
    """Remove the stage's domain and zone from qr.yaml; returns the domain that was there."""
    path = root / CONFIG_FILE
    domain = load_config(root).stage(stage).domain
    if domain is None:
        return None
    text = path.read_text(encoding="utf-8")
    path.write_text(remove_stage_keys(text, stage, ["domain", "zone"]), encoding="utf-8")
    return domain


class Waiter:
    """Polls ACM until the certificate is issued, with a spinner on a terminal."""

    def __init__(
        self,
        aws: Aws,
        out: Output,
        *,
        timeout: float = 1800,
        interval: float = 15,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aws = aws
        self.out = out
        self.timeout = timeout
        self.interval = interval
        self.sleep = sleep
        self.clock = clock

    def wait(self, domain: str) -> dict[str, Any]:
        deadline = self.clock() + self.timeout
        message = f"waiting for ACM to issue the certificate of {domain} (checks every few minutes)"
        if self.out.rich:
            with self.out.console.status(message):
                return self._poll(domain, deadline)
        self.out.line(message + " ...")
        return self._poll(domain, deadline)

    def _poll(self, domain: str, deadline: float) -> dict[str, Any]:
        while True:
            certificate = find_certificate(self.aws, domain)
            status = certificate.get("Status") if certificate else None
            if certificate is not None and status == "ISSUED":
                return certificate
            if status in ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED"):
                raise QrError(
                    f"the certificate of {domain} is {status}",
                    f"ACM gave up on it ({(certificate or {}).get('FailureReason', 'no reason')}). "
                    f"Run 'qr domain remove' and 'qr domain add {domain}' to request a new one.",
                )
            if self.clock() >= deadline:
                raise QrError(
                    f"the certificate of {domain} was not issued within "
                    f"{self.timeout / 60:g} minutes (status {status or 'not found'})",
                    "Check that the validation records above exist in your DNS (ACM can take "
                    "up to 30 minutes after they appear). Then run 'qr deploy': it finishes "
                    "the domain setup once the certificate is issued.",
                )
            self.sleep(self.interval)


def validation_records(certificate: dict[str, Any]) -> list[dict[str, str]]:
    records = []
    for option in certificate.get("DomainValidationOptions", []):
        record = option.get("ResourceRecord")
        if record:
            records.append(
                {"name": record["Name"], "type": record["Type"], "value": record["Value"]}
            )
    unique = {(r["name"], r["type"], r["value"]): r for r in records}
    return list(unique.values())


def show_records(out: Output, title: str, records: list[dict[str, str]]) -> None:
    out.table(
        title,
        ["name", "type", "value"],
        [[r.get("name", ""), r.get("type", ""), r.get("value", "")] for r in records],
    )


def add(
    root: Path,
    stage: str,
    domain: str,
    *,
    zone: str | None,
    aws: Aws,
    out: Output,
    deploy: Deploy | None,
    waiter: Waiter,
) -> None:
    """Record the domain; with ``deploy``, apply and see the certificate through."""
    record_domain(root, stage, domain, zone)
    out.success(f"stages.{stage}.domain = {domain} recorded in {CONFIG_FILE}")
    if deploy is None:
        out.line(f"Run 'qr deploy --stage {stage}' to create it.")
        return
    outputs = deploy()
    if zone or load_config(root).stage(stage).zone:
        out.success(f"https://{domain} is set up; Route53 has the records")
        return
    certificate = find_certificate(aws, domain)
    if certificate is None:
        raise QrError(
            f"no ACM certificate for {domain} after the deploy",
            "The rendered Terraform should request it; run 'qr build' and check "
            ".qr/build/<stage>/terraform/domain.tf, then 'qr deploy'.",
        )
    if certificate.get("Status") != "ISSUED":
        records = outputs.get("dns_records") or validation_records(certificate)
        show_records(out, "Create these DNS records to validate the certificate", records)
        waiter.wait(domain)
        out.success(f"certificate for {domain} issued")
        outputs = deploy()
    records = outputs.get("dns_records") or []
    if records:
        show_records(out, f"DNS records for {domain} (create or keep them)", records)
    out.success(f"https://{domain} is set up (DNS changes can take a while to spread)")


def remove(root: Path, stage: str, *, out: Output, deploy: Deploy | None) -> None:
    domain = forget_domain(root, stage)
    if domain is None:
        raise QrError(
            f"stage {stage!r} has no domain in {CONFIG_FILE}",
            "See the domains with: qr domain list",
        )
    out.success(f"stages.{stage}.domain ({domain}) removed from {CONFIG_FILE}")
    if deploy is None:
        out.line(f"Run 'qr deploy --stage {stage}' to delete the certificate and domain names.")
        return
    deploy()
    out.line(f"Delete the DNS records you created for {domain} at your DNS provider.")


def list_domains(root: Path, aws: Aws) -> list[dict[str, Any]]:
    rows = []
    for stage in load_config(root).stages.values():
        if stage.domain is None:
            continue
        certificate = find_certificate(aws, stage.domain)
        rows.append(
            {
                "stage": stage.name,
                "domain": stage.domain,
                "zone": stage.zone,
                "certificate": certificate.get("Status") if certificate else None,
                "http": _domain_name(aws, stage.domain),
                "websocket": _domain_name(aws, f"ws.{stage.domain}"),
            }
        )
    return rows


def _domain_name(aws: Aws, name: str) -> dict[str, Any] | None:
    client = aws.client("apigatewayv2")
    with aws_errors(f"reading API Gateway domain name {name}"):
        try:
            found = client.get_domain_name(DomainName=name)
        except ClientError as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        mappings = client.get_api_mappings(DomainName=name).get("Items", [])
    configuration = (found.get("DomainNameConfigurations") or [{}])[0]
    return {
        "status": configuration.get("DomainNameStatus", "AVAILABLE"),
        "target": configuration.get("ApiGatewayDomainName"),
        "mappings": [f"{m.get('ApiId')}/{m.get('Stage')}" for m in mappings],
    }


def show_list(rows: list[dict[str, Any]], out: Output) -> None:
    def describe(info: dict[str, Any] | None) -> str:
        if info is None:
            return "not created"
        mapped = ", ".join(info["mappings"]) or "not mapped"
        return f"{info['status']} → {mapped}"

    out.table(
        "Custom domains",
        ["stage", "domain", "certificate", "HTTP", "WebSocket (ws.)"],
        [
            [
                r["stage"],
                r["domain"],
                r["certificate"] or "not requested",
                describe(r["http"]),
                describe(r["websocket"]),
            ]
            for r in rows
        ],
    )
