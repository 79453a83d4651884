"""qr domain against ACM, API Gateway v2 and Route53 in a moto server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import moto.settings
import pytest

from qr.cli.console import Output
from qr.cli.deploy import domain
from qr.cli.deploy.aws import Aws
from qr.cli.errors import QrError
from qr.runtime.config import load_config
from tests.integration.deploy.conftest import run_qr

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TerraformLike:
    """Stands in for the apply: requests the certificate (once) as domain.tf would."""

    def __init__(self, aws: Aws, name: str) -> None:
        self.aws = aws
        self.name = name
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        acm = self.aws.client("acm")
        if domain.find_certificate(self.aws, self.name) is None:
            acm.request_certificate(
                DomainName=self.name,
                ValidationMethod="DNS",
                SubjectAlternativeNames=[f"ws.{self.name}"],
            )
        certificate = domain.find_certificate(self.aws, self.name)
        assert certificate is not None
        records = domain.validation_records(certificate)
        if certificate["Status"] == "ISSUED":
            records.append({"name": self.name, "type": "CNAME", "value": "d-abc.execute-api.aws"})
        return {"dns_records": records}


def test_add_without_zone_prints_records_and_times_out_cleanly(demo: Path, aws: Aws) -> None:
    stream = io.StringIO()
    out = Output(stream, rich=False)
    clock = FakeClock()
    waiter = domain.Waiter(
        aws, out, timeout=60, interval=15, sleep=clock.sleep, clock=lambda: clock.now
    )
    deploy = TerraformLike(aws, "api.shop.io")
    with pytest.raises(QrError) as info:
        domain.add(
            demo,
            "production",
            "api.shop.io",
            zone=None,
            aws=aws,
            out=out,
            deploy=deploy,
            waiter=waiter,
        )
    assert info.value.message == (
        "the certificate of api.shop.io was not issued within 1 minutes (status PENDING_VALIDATION)"
    )
    assert "qr deploy" in info.value.hint
    assert clock.sleeps == [15, 15, 15, 15]
    text = stream.getvalue()
    assert "Create these DNS records to validate the certificate" in text
    assert "acm-validations.aws." in text
    assert "waiting for ACM to issue the certificate of api.shop.io" in text
    assert load_config(demo).stage("production").domain == "api.shop.io"
    assert deploy.calls == 1


def test_add_without_zone_deploys_again_once_issued(
    demo: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 0)  # moto issues at once
    stream = io.StringIO()
    out = Output(stream, rich=False)
    deploy = TerraformLike(aws, "api.shop.io")
    domain.add(
        demo,
        "production",
        "api.shop.io",
        zone=None,
        aws=aws,
        out=out,
        deploy=deploy,
        waiter=domain.Waiter(aws, out, sleep=lambda s: None),
    )
    assert deploy.calls in (1, 2)  # once when ACM had already issued it during the first apply
    text = stream.getvalue()
    assert "d-abc.execute-api.aws" in text
    assert "https://api.shop.io is set up" in text


def test_certificate_ready_variable_follows_acm(
    tmp_path: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "tf"
    directory.mkdir()
    assert domain.certificate_ready(aws, directory, "api.shop.io") is None
    (directory / "variables.tf").write_text(
        'variable "domain_certificate_ready" {\n  type    = bool\n  default = false\n}\n'
    )
    ready_file = directory / domain.READY_FILE
    assert domain.certificate_ready(aws, directory, "api.shop.io") is False
    assert json.loads(ready_file.read_text()) == {"domain_certificate_ready": False}
    aws.client("acm").request_certificate(DomainName="api.shop.io", ValidationMethod="DNS")
    assert domain.certificate_ready(aws, directory, "api.shop.io") is False
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 0)
    assert domain.certificate_ready(aws, directory, "api.shop.io") is True
    assert json.loads(ready_file.read_text()) == {"domain_certificate_ready": True}


def test_add_with_a_zone_and_remove(demo: Path, aws: Aws) -> None:
    zone_id = "Z0123456789ABCDEFGHIJ"
    stream = io.StringIO()
    out = Output(stream, rich=False)
    calls: list[str] = []

    def deploy() -> dict[str, Any]:
        calls.append("deploy")
        return {"dns_records": []}

    domain.add(
        demo,
        "production",
        "api.shop.io",
        zone=zone_id,
        aws=aws,
        out=out,
        deploy=deploy,
        waiter=domain.Waiter(aws, out),
    )
    assert calls == ["deploy"]
    stage = load_config(demo).stage("production")
    assert (stage.domain, stage.zone) == ("api.shop.io", zone_id)
    assert "Route53 has the records" in stream.getvalue()

    domain.remove(demo, "production", out=out, deploy=deploy)
    assert calls == ["deploy", "deploy"]
    stage = load_config(demo).stage("production")
    assert (stage.domain, stage.zone) == (None, None)
    with pytest.raises(QrError, match="has no domain"):
        domain.remove(demo, "production", out=out, deploy=deploy)


def test_domain_commands_from_a_scratch_project(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(demo)
    code, out, err = run_qr(capsys, "domain", "add", "api.shop.io", "--no-apply", "-C", c)
    assert code == 0, err
    assert "stages.production.domain = api.shop.io recorded in qr.yaml" in out
    assert "qr deploy --stage production" in out
    text = (demo / "qr.yaml").read_text()
    assert "    domain: api.shop.io " in text and "# custom domain" in text

    code, _, err = run_qr(capsys, "domain", "add", "API.shop.io", "--no-apply", "-C", c)
    assert code == 1 and "not a domain name" in err
    code, _, err = run_qr(capsys, "domain", "add", "api.shop.io", "--zone", "nope", "-C", c)
    assert code == 1 and "not a Route53 hosted zone id" in err

    code, out, err = run_qr(capsys, "domain", "list", "-C", c)
    assert code == 0, err
    assert "api.shop.io" in out and "not requested" in out and "not created" in out

    acm = aws.client("acm")
    acm.request_certificate(DomainName="api.shop.io", ValidationMethod="DNS")
    arn = acm.list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    apigw = aws.client("apigatewayv2")
    api = apigw.create_api(Name="app-production-http", ProtocolType="HTTP")["ApiId"]
    apigw.create_domain_name(
        DomainName="api.shop.io",
        DomainNameConfigurations=[
            {"CertificateArn": arn, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
        ],
    )
    apigw.create_api_mapping(DomainName="api.shop.io", ApiId=api, Stage="$default")
    code, out, err = run_qr(capsys, "domain", "list", "--json", "-C", c)
    assert code == 0, err
    [row] = json.loads(out)
    assert row["certificate"] == "PENDING_VALIDATION"
    assert row["http"]["mappings"] == [f"{api}/$default"]
    assert row["websocket"] is None

    code, out, err = run_qr(capsys, "domain", "remove", "--no-apply", "-C", c)
    assert code == 0, err
    assert load_config(demo).stage("production").domain is None
