"""qr queues redrive/purge --stage S: SQS in a moto server, the message move task calls through
botocore's Stubber (moto does not implement StartMessageMoveTask/ListMessageMoveTasks; the Stubber
checks every parameter against the real SQS API model)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from qr.cli.console import Output
from qr.cli.deploy.aws import Aws
from qr.cli.deploy.queue_ops import QueueOps, redrive
from qr.cli.deploy.target import Target, load_target
from qr.cli.errors import QrError
from tests.integration.deploy.conftest import REGION, run_qr

pytestmark = pytest.mark.integration


@pytest.fixture
def target(demo: Path, aws: Aws) -> Target:
    """The scaffold's 'emails' queue and its DLQ as Terraform creates them."""
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="app-production-emails-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.create_queue(
        QueueName="app-production-emails",
        Attributes={
            "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}'
        },
    )
    return load_target(demo, None, aws)


@pytest.fixture
def mover() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.Session(region_name=REGION).client("sqs", region_name=REGION)
    stubber = Stubber(client)
    with stubber:
        yield client, stubber
    stubber.assert_no_pending_responses()


def urls(target: Target) -> tuple[str, str, str, str]:
    sqs = target.aws.client("sqs")
    dlq = sqs.get_queue_url(QueueName="app-production-emails-dlq")["QueueUrl"]
    queue = sqs.get_queue_url(QueueName="app-production-emails")["QueueUrl"]

    def arn(url: str) -> str:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    return dlq, arn(dlq), queue, arn(queue)


def task(status: str, moved: int, total: int, **extra: Any) -> dict[str, Any]:
    return {
        "Results": [
            {
                "TaskHandle": "handle-1",
                "Status": status,
                "SourceArn": "arn:aws:sqs:us-east-1:123456789012:app-production-emails-dlq",
                "ApproximateNumberOfMessagesMoved": moved,
                "ApproximateNumberOfMessagesToMove": total,
                "StartedTimestamp": 1_700_000_000_000,
                **extra,
            }
        ]
    }


def test_redrive_starts_a_move_task_from_the_dlq_to_its_queue_and_follows_it(
    target: Target, mover: tuple[Any, Stubber]
) -> None:
    client, stub = mover
    dlq, dlq_arn, _, queue_arn = urls(target)
    for n in range(3):
        target.aws.client("sqs").send_message(QueueUrl=dlq, MessageBody=f'{{"n": {n}}}')
    listing = {"SourceArn": dlq_arn, "MaxResults": 1}
    stub.add_response("list_message_move_tasks", {"Results": []}, listing)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-1"},
        {"SourceArn": dlq_arn, "DestinationArn": queue_arn},
    )
    stub.add_response("list_message_move_tasks", task("RUNNING", 1, 3), listing)
    stub.add_response("list_message_move_tasks", task("COMPLETED", 3, 3), listing)
    sleeps: list[float] = []
    ops = QueueOps(target, mover=client, sleep=sleeps.append)
    text = io.StringIO()

    report = redrive(ops, "emails", Output(text, rich=False))

    assert report["task"]["status"] == "COMPLETED" and report["task"]["moved"] == 3
    assert report["dead_letter_queue"] == "app-production-emails-dlq"
    assert report["joined_running_task"] is False
    lines = text.getvalue().splitlines()
    assert lines == [
        "  running: 0/3 moved",
        "  running: 1/3 moved",
        "  completed: 3/3 moved",
        "ok: moved 3 messages back to app-production-emails",
    ]
    assert sleeps == [2.0, 2.0]


def test_redrive_follows_a_task_already_running_instead_of_starting_another(
    target: Target, mover: tuple[Any, Stubber]
) -> None:
    client, stub = mover
    _, dlq_arn, _, _ = urls(target)
    listing = {"SourceArn": dlq_arn, "MaxResults": 1}
    stub.add_response("list_message_move_tasks", task("RUNNING", 5, 9), listing)
    stub.add_response("list_message_move_tasks", task("COMPLETED", 9, 9), listing)
    text = io.StringIO()

    report = redrive(QueueOps(target, mover=client, sleep=lambda _: None), "emails", Output(text))

    assert report["joined_running_task"] is True
    assert "already running: following it" in text.getvalue()
    assert "moved 9 messages back" in text.getvalue()


def test_redrive_of_an_empty_dlq_moves_nothing(target: Target, mover: tuple[Any, Stubber]) -> None:
    client, stub = mover
    _, dlq_arn, _, _ = urls(target)
    stub.add_response(
        "list_message_move_tasks", {"Results": []}, {"SourceArn": dlq_arn, "MaxResults": 1}
    )
    text = io.StringIO()

    report = redrive(QueueOps(target, mover=client), "emails", Output(text, rich=False))

    assert report["task"] is None
    assert text.getvalue() == "ok: app-production-emails-dlq is empty: nothing to move back\n"


def test_a_failed_move_task_is_an_error_with_its_reason(
    target: Target, mover: tuple[Any, Stubber]
) -> None:
    client, stub = mover
    dlq, dlq_arn, _, queue_arn = urls(target)
    target.aws.client("sqs").send_message(QueueUrl=dlq, MessageBody="x")
    listing = {"SourceArn": dlq_arn, "MaxResults": 1}
    stub.add_response("list_message_move_tasks", {"Results": []}, listing)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-1"},
        {"SourceArn": dlq_arn, "DestinationArn": queue_arn},
    )
    stub.add_response(
        "list_message_move_tasks",
        task("FAILED", 0, 1, FailureReason="AWS.SimpleQueueService.NonExistentQueue"),
        listing,
    )
    ops = QueueOps(target, mover=client, sleep=lambda _: None)

    with pytest.raises(QrError) as info:
        redrive(ops, "emails", Output(io.StringIO(), rich=False))

    assert "failed after 0 messages: AWS.SimpleQueueService.NonExistentQueue" in info.value.message


def test_redrive_of_a_queue_that_is_not_deployed_names_it(target: Target) -> None:
    with pytest.raises(QrError) as info:
        QueueOps(target).start_redrive("reports")
    assert "app-production-reports-dlq does not exist in us-east-1" in info.value.message
    assert "qr deploy --stage production" in (info.value.hint or "")


def test_purge_deletes_the_queues_messages_on_moto(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = target.aws.client("sqs")
    dlq, _, queue, _ = urls(target)
    sqs.send_message(QueueUrl=queue, MessageBody="a")
    sqs.send_message(QueueUrl=dlq, MessageBody="b")

    code, out, err = run_qr(
        capsys,
        "queues",
        "purge",
        "emails",
        "--stage",
        "production",
        "--yes",
        "-C",
        str(target.root),
    )

    assert code == 0, err
    assert "purging app-production-emails" in out
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    assert "Messages" in sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0)


def test_a_second_purge_within_60_seconds_is_explained(target: Target) -> None:
    client = boto3.Session(region_name=REGION).client("sqs", region_name=REGION)
    _, _, queue, _ = urls(target)
    with Stubber(client) as stub:
        stub.add_response(
            "get_queue_url", {"QueueUrl": queue}, {"QueueName": "app-production-emails"}
        )
        stub.add_response(
            "get_queue_attributes",
            {
                "Attributes": {
                    "QueueArn": "arn:aws:sqs:us-east-1:1:q",
                    "ApproximateNumberOfMessages": "0",
                }
            },
            {"QueueUrl": queue, "AttributeNames": ["QueueArn", "ApproximateNumberOfMessages"]},
        )
        stub.add_client_error(
            "purge_queue",
            service_error_code="AWS.SimpleQueueService.PurgeQueueInProgress",
            http_status_code=403,
            expected_params={"QueueUrl": queue},
        )
        with pytest.raises(QrError) as info:
            QueueOps(target, sqs=client).purge("emails")
        stub.assert_no_pending_responses()
    assert "purged less than 60 seconds ago" in info.value.message
    assert "one purge per queue every 60 seconds" in (info.value.hint or "")


def test_purge_without_a_terminal_needs_yes(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_qr(capsys, "queues", "purge", "emails", "-C", str(demo))
    assert code == 1
    assert "needs confirmation" in err and "--yes" in err
