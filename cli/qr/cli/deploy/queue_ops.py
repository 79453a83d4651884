"""Operating a deployed stage's queues: ``qr queues redrive NAME --stage S`` and ``purge``.

Redrive is SQS's own dead-letter queue redrive, an asynchronous *message move task*:

1. find the queue and its dead-letter queue (``GetQueueUrl`` + ``GetQueueAttributes``: ARN and
   depth); an empty dead-letter queue is reported, not an error;
2. follow a task that is already running on that dead-letter queue (SQS allows one active task
   per queue) or start one with ``StartMessageMoveTask`` (source: the DLQ, destination: the queue);
3. poll ``ListMessageMoveTasks`` until the task is ``COMPLETED``, ``CANCELLED`` or ``FAILED``,
   showing moved / to move as a progress bar on a terminal (a line per change when piped).
   Ctrl+C stops only the following: the task keeps running on AWS.

SQS facts (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html,
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html):
the source must be a queue configured as another queue's dead-letter queue; one active task per
queue; FIFO dead-letter queues redrive into FIFO queues. Purge is ``PurgeQueue``
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_PurgeQueue.html): it
deletes every message, in flight included, may take up to 60 seconds, and SQS refuses a second
purge of the same queue within those 60 seconds (``PurgeQueueInProgress``).

These calls are made with the *deploying user's* credentials (the same as ``qr status``), never
the function's role: the function needs no permission to move or purge messages. The IAM actions
are listed in docs/operate.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from qr.cli.console import Output
from qr.cli.deploy.aws import aws_errors, error_code
from qr.cli.deploy.target import Target
from qr.cli.errors import QrError

FINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


@dataclass(frozen=True)
class MoveTask:
    """One ``ListMessageMoveTasks`` result, as the command reports it."""

    status: str
    moved: int
    to_move: int | None
    task_handle: str | None = None
    failure: str | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> MoveTask:
        total = item.get("ApproximateNumberOfMessagesToMove")
        return cls(
            status=str(item.get("Status", "")),
            moved=int(item.get("ApproximateNumberOfMessagesMoved", 0)),
            to_move=None if total is None else int(total),
            task_handle=item.get("TaskHandle"),
            failure=item.get("FailureReason"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "moved": self.moved,
            "to_move": self.to_move,
            "task_handle": self.task_handle,
            "failure": self.failure,
        }


@dataclass(frozen=True)
class QueueRef:
    name: str
    url: str
    arn: str
    depth: int


class QueueOps:
    """SQS operations on one deployed stage's queues.

    ``sqs`` defaults to the stage's client; ``mover`` (the client for the message move task calls)
    defaults to the same one. They are separate only so tests can check those two calls against
    the real API model with botocore's Stubber while the rest runs on a moto server, which does not
    implement message move tasks.
    """

    def __init__(
        self,
        target: Target,
        *,
        sqs: Any | None = None,
        mover: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = 2.0,
    ) -> None:
        self.target = target
        self.sqs = sqs if sqs is not None else target.aws.client("sqs")
        self.mover = mover if mover is not None else self.sqs
        self.sleep = sleep
        self.interval = interval

    def queue(self, name: str, *, dead: bool = False) -> QueueRef:
        """The deployed queue (or its dead-letter queue), with its ARN and visible depth."""
        aws_name = self.target.dlq_name(name) if dead else self.target.queue_name(name)
        with aws_errors(f"looking up the queue {aws_name}"):
            try:
                url = self.sqs.get_queue_url(QueueName=aws_name)["QueueUrl"]
            except ClientError as exc:
                if error_code(exc) in (
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ):
                    raise QrError(
                        f"the queue {aws_name} does not exist in {self.target.aws.region}",
                        f"Deploy the stage first (qr deploy --stage {self.target.stage}), and check "
                        "the queue name: it is the file name in queues/.",
                    ) from None
                raise
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
            )["Attributes"]
        return QueueRef(
            aws_name, url, attributes["QueueArn"], int(attributes["ApproximateNumberOfMessages"])
        )

    def latest_task(self, source_arn: str) -> MoveTask | None:
        with aws_errors("reading the dead-letter queue's move tasks"):
            results = self.mover.list_message_move_tasks(SourceArn=source_arn, MaxResults=1)
        items = results.get("Results") or []
        return MoveTask.from_api(items[0]) if items else None

    def start_redrive(self, name: str) -> tuple[QueueRef, QueueRef, MoveTask | None, bool]:
        """Start moving ``name``'s dead letters back. Returns the DLQ, the queue, the task that
        runs (``None``: nothing to move) and whether it was already running before this call."""
        dlq = self.queue(name, dead=True)
        queue = self.queue(name)
        running = self.latest_task(dlq.arn)
        if running is not None and running.status == "RUNNING":
            return dlq, queue, running, True
        if dlq.depth == 0:
            return dlq, queue, None, False
        with aws_errors(f"starting the redrive of {dlq.name}"):
            handle = self.mover.start_message_move_task(
                SourceArn=dlq.arn, DestinationArn=queue.arn
            )["TaskHandle"]
        return dlq, queue, MoveTask("RUNNING", 0, dlq.depth, handle), False

    def follow(
        self, source_arn: str, task: MoveTask, on_change: Callable[[MoveTask], None]
    ) -> MoveTask:
        """Poll until the task ends; ``on_change`` sees every new state."""
        last = task
        on_change(last)
        while last.status not in FINAL:
            self.sleep(self.interval)
            latest = self.latest_task(source_arn)
            if latest is None:
                raise QrError(
                    f"the move task on {source_arn} disappeared while it was followed",
                    "Check the dead-letter queue in the SQS console.",
                )
            if latest != last:
                on_change(latest)
            last = latest
        return last

    def purge(self, name: str, *, dead: bool = False) -> QueueRef:
        ref = self.queue(name, dead=dead)
        with aws_errors(f"purging {ref.name}"):
            try:
                self.sqs.purge_queue(QueueUrl=ref.url)
            except ClientError as exc:
                if error_code(exc) in (
                    "AWS.SimpleQueueService.PurgeQueueInProgress",
                    "PurgeQueueInProgress",
                ):
                    raise QrError(
                        f"{ref.name} was purged less than 60 seconds ago",
                        "SQS allows one purge per queue every 60 seconds; try again in a minute.",
                    ) from None
                raise
        return ref


def redrive(ops: QueueOps, name: str, out: Output, *, wait: bool = True) -> dict[str, Any]:
    """``qr queues redrive NAME --stage S``: start (or join) the move and follow it to the end."""
    dlq, queue, task, joined = ops.start_redrive(name)
    report: dict[str, Any] = {
        "queue": queue.name,
        "dead_letter_queue": dlq.name,
        "joined_running_task": joined,
        "task": None if task is None else task.to_dict(),
    }
    if task is None:
        out.success(f"{dlq.name} is empty: nothing to move back")
        return report
    if joined:
        out.line(f"a redrive of {dlq.name} is already running: following it")
    if not wait:
        out.success(f"moving {dlq.name} -> {queue.name} (task {task.task_handle})")
        return report
    final = _follow_with_progress(ops, dlq, queue, task, out)
    report["task"] = final.to_dict()
    if final.status == "COMPLETED":
        out.success(
            f"moved {final.moved} message{'s' if final.moved != 1 else ''} back to {queue.name}"
        )
    elif final.status == "CANCELLED":
        out.line(f"the redrive was cancelled after {final.moved} messages")
    else:
        raise QrError(
            f"the redrive of {dlq.name} failed after {final.moved} messages: {final.failure}",
            "Check that both queues exist and that the messages fit the destination queue "
            "(a FIFO dead-letter queue moves only into a FIFO queue).",
        )
    return report


def _follow_with_progress(
    ops: QueueOps, dlq: QueueRef, queue: QueueRef, task: MoveTask, out: Output
) -> MoveTask:
    label = f"{dlq.name} -> {queue.name}"
    if not out.rich:
        return ops.follow(
            dlq.arn,
            task,
            lambda t: out.line(f"  {t.status.lower()}: {t.moved}/{_total(t)} moved"),
        )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=out.console, transient=False) as bar:
        row = bar.add_task(label, total=task.to_move)

        def show(state: MoveTask) -> None:
            bar.update(row, completed=state.moved, total=state.to_move)

        return ops.follow(dlq.arn, task, show)


def _total(task: MoveTask) -> str:
    return "?" if task.to_move is None else str(task.to_move)
