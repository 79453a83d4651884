"""Job state on DynamoDB (table ``QR_JOBS_TABLE``): the ``JobStore`` of the Lambda platform.

One item per job, hash key ``job_id``, TTL on ``expires_at``. A push writes nothing (it is one
SQS SendMessage); the consumer writes twice per job, both conditional updates:

* ``start``: ``status = running`` for this attempt, unless the job is already ``succeeded``,
  ``dead`` or ``cancelled``. A failed condition means "do not run it": a late duplicate delivery
  of a finished job, or a job cancelled before it ran (``cancel`` leaves a ``cancelled`` item
  for an id it has never seen, so the job is refused when it arrives). SQS cannot delete a
  message by id, so this check is how cancellation works on AWS;
* ``finish``: the outcome, result, error and last progress, unless the job is already final, so
  nothing ever moves a finished job back.

An attempt that never finishes (the function was killed) reads ``queued`` once its lease
(deadline plus a margin, recorded at start) has passed, as locally when a worker dies.
``job.progress()`` adds at most one conditional update per second while the job runs (it
answers whether a cancel was asked for). Until its first receive a job has no item: ``get``
returns ``None`` for it (locally it reads ``queued``). ``list`` scans the table (fine for the
jobs of one stage kept ``keep_results`` seconds; a dashboard over millions of jobs would want an
index). Expired items are skipped on read, since DynamoDB's TTL deletes them lazily.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from qr.runtime.aws._clients import DynamoTable, error_code
from qr.runtime.jobs import MAX_ITEM_BYTES
from qr.runtime.ports import DEFAULT_KEEP_RESULTS, STATUSES, JobStart, JobState, JobStatus

TTL_ATTRIBUTE = "expires_at"
RUNNING_GRACE = 43_200
"""A running job's item outlives its start by this plus ``keep`` (12 h, the longest a job can
hold its SQS lease), so a worker that dies mid-job cannot leave an item that never expires."""
_FINAL = {
    ":succeeded": {"S": "succeeded"},
    ":dead": {"S": "dead"},
    ":cancelled": {"S": "cancelled"},
}
_NOT_FINAL = "NOT #status IN (:succeeded, :dead, :cancelled)"
_ATTRIBUTES = {"ttl": TTL_ATTRIBUTE}
"""Placeholder -> attribute name where they differ (``#status`` names ``status``)."""


class JobStateTooLarge(ValueError):
    """DynamoDB refused the state item: it would be over the 400 KB item limit."""


class DynamoJobStore(DynamoTable):
    """The ``JobStore`` of the Lambda platform."""

    def _db(self) -> Any:
        return self._clients.get("dynamodb")

    def _update(self, job_id: str, **request: Any) -> dict[str, Any] | None:
        """One UpdateItem; the new item, or ``None`` when its condition failed.

        Every attribute is named through a ``#name`` placeholder (several, like ``status`` and
        ``keep``, are DynamoDB reserved words); the placeholders used are mapped here."""
        text = request["UpdateExpression"] + " " + request.get("ConditionExpression", "")
        names = {f"#{n}": _ATTRIBUTES.get(n, n) for n in set(re.findall(r"#(\w+)", text))}
        try:
            response = self._db().update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                ExpressionAttributeNames=names,
                **request,
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            if error_code(exc) == "ValidationException" and "size" in str(exc).lower():
                raise JobStateTooLarge(
                    f"job {job_id}: DynamoDB refused its state: over the {MAX_ITEM_BYTES:,}-byte "
                    "(400 KB) item limit; return a smaller result (store large data in S3)"
                ) from exc
            raise
        attributes: dict[str, Any] = response.get("Attributes") or {}
        return attributes

    def get(self, job_id: str) -> JobState | None:
        item = (
            self._db()
            .get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
            .get("Item")
        )
        return None if not item else self._state(item)

    def list(
        self, *, queue: str | None = None, status: str | None = None, limit: int = 50
    ) -> Sequence[JobState]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown job status {status!r} (statuses: {', '.join(STATUSES)})")
        found: list[JobState] = []
        request: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self._db().scan(**request)
            for item in page.get("Items", []):
                state = self._state(item)
                if state is None or (queue is not None and state.queue != queue):
                    continue
                if status is None or state.status == status:
                    found.append(state)
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda s: (s.queued_at or 0, s.job_id), reverse=True)
        return found[:limit]

    def cancel(self, job_id: str) -> JobState | None:
        now = self._clock()
        asked = self._update(
            job_id,
            UpdateExpression="SET #cancel = :true",
            ConditionExpression="#status = :running",
            ExpressionAttributeValues={":true": {"BOOL": True}, ":running": {"S": "running"}},
            ReturnValues="ALL_NEW",
        )
        if asked is not None:
            return self._state(asked)
        stopped = self._update(
            job_id,
            UpdateExpression=(
                "SET #status = :cancelled, #finished_at = :now, "
                "#ttl = :now + if_not_exists(#keep, :keep)"
            ),
            ConditionExpression="attribute_not_exists(#job_id) OR #status = :failed",
            ExpressionAttributeValues={
                ":cancelled": {"S": "cancelled"},
                ":failed": {"S": "failed"},
                ":now": _number(now),
                ":keep": _number(DEFAULT_KEEP_RESULTS),
            },
            ReturnValues="ALL_NEW",
        )
        if stopped is not None:
            return self._state(stopped)  # None for a job not received yet: nothing is known
        return self.get(job_id)

    def progress(self, job_id: str, value: float, message: str | None) -> bool:
        values: dict[str, Any] = {":value": _number(value), ":running": {"S": "running"}}
        expression = "SET #progress = :value"
        if message is None:
            expression += " REMOVE #progress_message"
        else:
            expression += ", #progress_message = :message"
            values[":message"] = {"S": message}
        item = self._update(
            job_id,
            UpdateExpression=expression,
            ConditionExpression="#status = :running",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return bool(item and item.get("cancel", {}).get("BOOL"))

    def cancel_requested(self, job_id: str) -> bool:
        item = (
            self._db()
            .get_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                ConsistentRead=True,
                ProjectionExpression="#cancel",
                ExpressionAttributeNames={"#cancel": "cancel"},
            )
            .get("Item")
        )
        return bool(item and item.get("cancel", {}).get("BOOL"))

    def start(self, job: JobStart) -> bool:
        now = self._clock()
        values: dict[str, Any] = {
            ":running": {"S": "running"},
            ":queue": {"S": job.queue},
            ":attempt": _number(job.attempt),
            ":queued": _number(job.queued_at),
            ":now": _number(now),
            ":keep": _number(job.keep),
            ":expires": _number(int(now + RUNNING_GRACE + job.keep)),
            **_FINAL,
        }
        expression = (
            "SET #status = :running, #queue = :queue, #attempts = :attempt, #started_at = :now, "
            "#queued_at = if_not_exists(#queued_at, :queued), #keep = :keep, #ttl = :expires"
        )
        if job.lease is not None:
            expression += ", #lease_until = :lease"
            values[":lease"] = _number(round(now + job.lease, 3))
        if job.user is not None:
            expression += ", #user_id = :user"
            values[":user"] = {"S": job.user}
        item = self._update(
            job.job_id,
            UpdateExpression=expression,
            ConditionExpression=f"attribute_not_exists(#job_id) OR {_NOT_FINAL}",
            ExpressionAttributeValues=values,
            ReturnValues="NONE",
        )
        return item is not None

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        keep: float = DEFAULT_KEEP_RESULTS,
        result: Any = None,
        error: dict[str, str] | None = None,
        progress: tuple[float, str | None] | None = None,
    ) -> bool:
        now = self._clock()
        sets = ["#status = :status"]
        values: dict[str, Any] = {":status": {"S": status}, **_FINAL}
        if status != "failed":
            sets += ["#finished_at = :now", "#ttl = :expires"]
            values[":now"] = _number(now)
            values[":expires"] = _number(int(now + keep))
        if result is not None:
            sets.append("#result = :result")
            values[":result"] = {"S": json.dumps(result, separators=(",", ":"))}
        if error is not None:
            sets.append("#error = :error")
            values[":error"] = {"S": json.dumps(error)}
        if progress is not None:
            sets.append("#progress = :progress")
            values[":progress"] = _number(progress[0])
            if progress[1] is not None:
                sets.append("#progress_message = :message")
                values[":message"] = {"S": progress[1]}
        item = self._update(
            job_id,
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"attribute_exists(#job_id) AND {_NOT_FINAL}",
            ExpressionAttributeValues=values,
            ReturnValues="NONE",
        )
        return item is not None

    def _state(self, item: dict[str, Any]) -> JobState | None:
        queue = _text(item, "queue")
        if queue is None:  # cancelled before its first receive: nothing else is known
            return None
        expires = _float(item, TTL_ATTRIBUTE)
        if expires is not None and expires < self._clock():
            return None  # TTL deletes lazily
        status = _text(item, "status") or "queued"
        lease = _float(item, "lease_until")
        if status == "running" and lease is not None and lease < self._clock():
            status = "queued"  # the function died mid-job; SQS delivers it again (or to the DLQ)
        result = _text(item, "result")
        error = _text(item, "error")
        return JobState(
            job_id=str(item["job_id"]["S"]),
            queue=queue,
            status=status,  # type: ignore[arg-type]
            attempts=int(_float(item, "attempts") or 0),
            result=None if result is None else json.loads(result),
            error=None if error is None else json.loads(error),
            progress=_float(item, "progress"),
            progress_message=_text(item, "progress_message"),
            queued_at=_float(item, "queued_at"),
            started_at=_float(item, "started_at"),
            finished_at=_float(item, "finished_at"),
            user=_text(item, "user_id"),
            cancel_requested=bool(item.get("cancel", {}).get("BOOL")) and status == "running",
        )


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(str(value)))}


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return None if value is None else str(value)


def _float(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return None if value is None else float(value)
