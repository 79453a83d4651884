"""qr jobs --stage: a deployed stage's job table (DynamoDB on a moto server) through the port."""

from __future__ import annotations

import json

import boto3
import pytest

from qr.runtime.aws._clients import Clients
from qr.runtime.aws.job_state import DynamoJobStore
from qr.runtime.ports import JobStart
from tests.conftest import MakeProject
from tests.functional.test_cli import run
from tests.integration.deploy.conftest import REGION
from tests.integration.lambda_support import create_jobs_table

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("aws_env")
def test_list_and_show_a_stage_s_jobs(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        {"qr.yaml": "name: shop\n", "queues/orders.py": "def handler(payload): ...\n"}
    )
    clients = Clients(lambda service, **_: boto3.client(service, region_name=REGION))
    create_jobs_table(clients.get("dynamodb"), "shop-production-jobs")
    store = DynamoJobStore("shop-production-jobs", clients)
    store.start(JobStart("m-1", "orders", 1, 1_800_000_000.0, "u1"))
    store.finish("m-1", "succeeded", result={"total": 12})
    store.start(JobStart("m-2", "orders", 2, 1_800_000_001.0))
    store.progress("m-2", 0.25, "a quarter")

    code, out, err = run(capsys, "jobs", "--stage", "production", "--json", "-C", str(root))
    assert code == 0, err
    listed = json.loads(out)
    assert [(j["job_id"], j["status"]) for j in listed] == [
        ("m-2", "running"),
        ("m-1", "succeeded"),
    ]
    code, out, err = run(capsys, "jobs", "show", "m-2", "--stage", "production", "-C", str(root))
    assert code == 0, err
    assert "stage production, DynamoDB shop-production-jobs" not in out
    assert "progress  [#####...............] 25% a quarter" in out
    code, out, err = run(capsys, "jobs", "show", "m-9", "--stage", "production", "-C", str(root))
    assert code != 0
    assert "no job 'm-9' in stage production, DynamoDB shop-production-jobs" in " ".join(
        (out + err).split()
    )
