"""Queues on SQS: ``queues[...].push`` -> SendMessage, and visibility changes for the consumer.

Queue URLs come from ``QR_QUEUE_URL_PREFIX`` (set by Terraform): the URL of every queue minus its
short name, so ``prefix + "emails"`` is the ``emails`` queue and ``prefix + "orders.fifo"`` the
FIFO one. The message encoding is the shared contract: the body is the encoded payload, message
attributes carry ``content_type``, ``user_id`` (when a user pushed it) and one ``param_<name>`` per
job parameter. FIFO pushes carry the group and dedupe ids; standard ones their delay. A debounced push bumps
its key's version on DynamoDB first (``qr.runtime.aws.flow.DynamoDebounce``) and carries the key
and version as ``qr_debounce`` / ``qr_debounce_version``; the consumer drops it unless its
version is still the latest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from qr.runtime.aws._clients import Clients
from qr.runtime.chains import step_key
from qr.runtime.ports import OutgoingJob

if TYPE_CHECKING:
    from qr.runtime.aws.flow import DynamoDebounce, DynamoSteps

MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43_200
MAX_ATTRIBUTES = 10
"""Message attributes per message (SQS message quotas)."""
DEBOUNCE_ATTRIBUTE = "qr_debounce"
DEBOUNCE_VERSION_ATTRIBUTE = "qr_debounce_version"
ERROR_ATTRIBUTE = "qr_error"
"""Why the runtime moved a message to the dead-letter queue itself (an invalid payload)."""
_MAX_ERROR = 4000


class SqsQueues:
    """The ``QueuePort`` of the Lambda platform."""

    def __init__(
        self,
        url_prefix: str,
        clients: Clients,
        debounce: DynamoDebounce | None = None,
        steps: DynamoSteps | None = None,
    ) -> None:
        self.url_prefix = url_prefix
        self._clients = clients
        self.debounce = debounce
        self.steps = steps

    def url(self, queue: str) -> str:
        return self.url_prefix + queue

    def name_of(self, arn_or_name: str) -> str | None:
        """The qr queue name of an SQS queue ARN or full name (``None``: not this stage's)."""
        full = arn_or_name.rsplit(":", 1)[-1]
        stem = self.url_prefix.rsplit("/", 1)[-1]
        if not full.startswith(stem) or len(full) == len(stem):
            return None
        return full[len(stem) :]

    def send(self, job: OutgoingJob) -> str:
        attributes: dict[str, dict[str, str]] = {
            "content_type": {"DataType": "String", "StringValue": job.content_type}
        }
        if job.user_id is not None:
            attributes["user_id"] = {"DataType": "String", "StringValue": job.user_id}
        for key, value in sorted(job.params.items()):
            attributes[f"param_{key}"] = {"DataType": "String", "StringValue": value}
        if job.debounce_key is not None:
            if self.debounce is None:
                raise RuntimeError(
                    "a debounced push needs the flow-control table (QR_FLOW_TABLE), which the "
                    "generated Terraform creates for projects with standard queues: redeploy"
                )
            version = self.debounce.bump(job.queue, job.debounce_key, job.delay)
            attributes[DEBOUNCE_ATTRIBUTE] = {"DataType": "String", "StringValue": job.debounce_key}
            attributes[DEBOUNCE_VERSION_ATTRIBUTE] = {
                "DataType": "Number",
                "StringValue": str(version),
            }
        request: dict[str, Any] = {
            "QueueUrl": self.url(job.queue),
            "MessageBody": job.body,
            "MessageAttributes": attributes,
        }
        if job.group_id is not None:
            request["MessageGroupId"] = job.group_id
        if job.dedupe_id is not None:
            request["MessageDeduplicationId"] = job.dedupe_id
        if job.delay and not job.queue.endswith(".fifo"):
            # a debounce window is never shortened: whole seconds, rounded up
            delay = math.ceil(job.delay) if job.debounce_key is not None else round(job.delay)
            request["DelaySeconds"] = min(MAX_DELAY_SECONDS, max(0, delay))
        response = self._clients.get("sqs").send_message(**request)
        return str(response["MessageId"])

    def send_steps(self, job_id: str, steps: Sequence[OutgoingJob]) -> list[str]:
        """Push a finished job's next steps once each (``qr.runtime.chains``): FIFO steps are
        deduplicated by SQS (``<job id>-<index>``, unless the step has its own dedupe id);
        standard ones through a record in the flow table (``DynamoSteps``)."""
        ids: list[str] = []
        for index, job in enumerate(steps):
            key = step_key(job_id, index)
            if job.queue.endswith(".fifo"):
                ids.append(self.send(replace(job, dedupe_id=job.dedupe_id or key)))
                continue
            if self.steps is None:  # no flow table: at least once
                ids.append(self.send(job))
                continue
            already = self.steps.begin(key)
            if already is not None:
                ids.append(already)
                continue
            pushed = self.send(job)
            self.steps.done(key, pushed)
            ids.append(pushed)
        return ids

    def dlq_url(self, queue: str) -> str:
        """The dead-letter queue's URL: ``<prefix><name>-dlq[.fifo]`` as Terraform names it."""
        base = queue.removesuffix(".fifo")
        return self.url_prefix + base + "-dlq" + (".fifo" if queue.endswith(".fifo") else "")

    def dead_letter(self, queue: str, record: dict[str, Any], error: str) -> None:
        """Send a received message to its queue's dead-letter queue with ``error`` attached.

        The caller then reports the record as a success so Lambda deletes the original. Body and
        string attributes are kept; a FIFO copy keeps its group and is deduplicated by the
        original message id (what SQS's own redrive does).
        """
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in attributes_of(record).items()
        }
        attributes[ERROR_ATTRIBUTE] = {"DataType": "String", "StringValue": error[:_MAX_ERROR]}
        if len(attributes) > MAX_ATTRIBUTES:  # keep the error and the encoding first
            keep = [ERROR_ATTRIBUTE, "content_type", "user_id", *sorted(attributes)]
            attributes = {k: attributes[k] for k in dict.fromkeys(keep) if k in attributes}
            attributes = dict(list(attributes.items())[:MAX_ATTRIBUTES])
        request: dict[str, Any] = {
            "QueueUrl": self.dlq_url(queue),
            "MessageBody": str(record.get("body", "")),
            "MessageAttributes": attributes,
        }
        if queue.endswith(".fifo"):
            system = record.get("attributes") or {}
            request["MessageGroupId"] = system.get("MessageGroupId") or "qr"
            request["MessageDeduplicationId"] = str(record["messageId"])[:128]
        self._clients.get("sqs").send_message(**request)

    def change_visibility(self, queue: str, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again in ``seconds`` (0: now)."""
        timeout = min(MAX_VISIBILITY_SECONDS, max(0, round(seconds)))
        self._clients.get("sqs").change_message_visibility(
            QueueUrl=self.url(queue), ReceiptHandle=receipt_handle, VisibilityTimeout=timeout
        )


def attributes_of(record: dict[str, Any]) -> dict[str, str]:
    """String message attributes of an SQS Lambda record (``stringValue``, lower camel case)."""
    result: dict[str, str] = {}
    for name, value in (record.get("messageAttributes") or {}).items():
        if isinstance(value, dict) and value.get("stringValue") is not None:
            result[name] = str(value["stringValue"])
    return result
