"""The job state table (``QR_JOBS_TABLE``) of ``qr dev --docker``, kept in the dev server's job state.

The function in the container keeps the production ``DynamoJobStore``; its DynamoDB requests on
the jobs table arrive here (through ``aws_local``) and are applied to the dev server's own
``JobStore`` - the SQLite job state that plain ``qr dev``, ``qr jobs``, the status route, the
dashboard and ``jobs.cancel`` read - with the adapter's conditions and DynamoDB's answers
(``ConditionalCheckFailedException`` when a condition does not hold, the new item for
``ReturnValues=ALL_NEW``). Each request the adapter sends is recognised by the attribute it sets
first and by its condition:

* ``GetItem`` -> ``get`` (a ``ProjectionExpression`` keeps only those attributes: the read of
  ``cancel_requested``);
* ``UpdateItem`` ``SET status = :running`` unless final (``start``) -> ``start``: refused for a
  finished or cancelled job. The engine's claim has already counted the attempt (a job it holds
  reads ``running`` from its queue row), so for a job the engine handed out this confirms it and
  gives the job its state row (payload and origin from the queue row);
* ``UpdateItem`` ``SET status = :status`` if it exists and is not final (``finish``) -> ``finish``
  with the result, error and last progress; ``failed`` leaves the retention as it was, as the
  adapter's ``failed`` sets no TTL;
* ``UpdateItem`` ``SET progress`` while running (``progress``) -> ``progress``;
* ``UpdateItem`` ``SET cancel`` while running, then ``SET status = :cancelled`` for a job that
  has not run or waits for its retry (``cancel``) -> ``cancel``, which asks a running job to stop
  and removes a waiting one from its queue. An id the dev server has never seen stays unknown
  (on AWS the second step leaves a ``cancelled`` marker, since a job has no item before its first
  receive; locally every pushed job has a state from its push);
* ``Scan`` -> ``list``, in one page.

Times are the dev server's clock, not the values in the request. A finish whose item would be over
DynamoDB's 400 KB item limit is refused with DynamoDB's ``ValidationException`` (the adapter
checks results against a lower limit first, so this is a backstop). Any other request on the
table is a ``ValidationException`` naming it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from qr.runtime.jobs import MAX_ITEM_BYTES
from qr.runtime.ports import JobStart, JobState, JobStatus, JobStore

_CHECK_FAILED = ("ConditionalCheckFailedException", "The conditional request failed")
_NOT_FINAL = "NOT status IN (:succeeded, :dead, :cancelled)"
_WAITING = ("queued", "delayed", "failed")
"""What the adapter's second cancel step matches (locally: not running, not final)."""
_SCAN_ALL = 1_000_000
_MARK = re.compile(r"#\w+")


class TableError(Exception):
    """A DynamoDB error answer (``aws_local`` turns it into the 400 reply)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LocalJobsTable:
    """Serves ``DynamoJobStore``'s requests on table ``table`` from ``store``."""

    def __init__(self, table: str, store: JobStore) -> None:
        self.table = table
        self.store = store

    def serve(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action == "GetItem":
            return self._get_item(request)
        if action == "UpdateItem":
            return self._update_item(request)
        if action == "Scan":
            states = self.store.list(limit=_SCAN_ALL)
            items = [_item(state) for state in states]
            return {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        raise TableError(
            "ValidationException",
            f"qr dev --docker does not serve DynamoDB {action} on the jobs table {self.table} "
            "(it serves the GetItem, UpdateItem and Scan requests of qr's DynamoJobStore)",
        )

    def _get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        state = self.store.get(_job_id(request))
        if state is None:
            return {}
        item = _item(state)
        projection = request.get("ProjectionExpression")
        if projection:
            wanted = {a.strip() for a in _resolve(str(projection), request).split(",")}
            item = {name: value for name, value in item.items() if name in wanted}
        return {"Item": item}

    def _update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id = _job_id(request)
        update = _resolve(str(request.get("UpdateExpression", "")), request)
        condition = _resolve(str(request.get("ConditionExpression", "")), request)
        first = re.match(r"SET (\w+) = ", update)
        target = first.group(1) if first else ""
        values: dict[str, Any] = request.get("ExpressionAttributeValues") or {}
        operation = _OPERATIONS.get((target, condition.replace(_NOT_FINAL, "NOT FINAL")))
        if operation is None:
            raise TableError(
                "ValidationException",
                f"qr dev --docker does not serve this UpdateItem on the jobs table {self.table} "
                f"(UpdateExpression {update!r}, ConditionExpression {condition!r}): it serves "
                "the requests of qr's DynamoJobStore",
            )
        state = operation(self, job_id, _Values(values))
        if state is None:
            raise TableError(*_CHECK_FAILED)
        return {"Attributes": _item(state)} if request.get("ReturnValues") == "ALL_NEW" else {}

    def _start(self, job_id: str, values: _Values) -> JobState | None:
        started = self.store.start(
            JobStart(
                job_id,
                values.text("queue") or "",
                int(values.number("attempt") or 1),
                values.number("queued") or 0.0,
                values.text("user"),
                values.number("keep") or 0.0,
            )
        )
        return self.store.get(job_id) if started else None

    def _finish(self, job_id: str, values: _Values) -> JobState | None:
        status: JobStatus = values.text("status")  # type: ignore[assignment]
        result, error = values.text("result"), values.text("error")
        progress = values.number("progress")
        before = self.store.get(job_id)
        if before is None or before.done:
            return None
        if _size(before, result, error, values.text("message")) > MAX_ITEM_BYTES:
            raise TableError(
                "ValidationException", "Item size has exceeded the maximum allowed size"
            )
        now, expires = values.number("now"), values.number("expires")
        keep = 0.0 if now is None or expires is None else float(math.ceil(expires - now))
        finished = self.store.finish(
            job_id,
            status,
            keep=keep,
            result=None if result is None else json.loads(result),
            error=None if error is None else json.loads(error),
            progress=None if progress is None else (progress, values.text("message")),
        )
        return self.store.get(job_id) if finished else None

    def _progress(self, job_id: str, values: _Values) -> JobState | None:
        state = self.store.get(job_id)
        if state is None or state.status != "running":
            return None
        self.store.progress(job_id, values.number("value") or 0.0, values.text("message"))
        return self.store.get(job_id)

    def _ask_cancel(self, job_id: str, values: _Values) -> JobState | None:
        state = self.store.get(job_id)
        if state is None or state.status != "running":
            return None
        return self.store.cancel(job_id)

    def _stop(self, job_id: str, values: _Values) -> JobState | None:
        state = self.store.get(job_id)
        if state is not None and state.status not in _WAITING:
            return None
        return self.store.cancel(job_id)


_Operation = Callable[[LocalJobsTable, str, "_Values"], JobState | None]
_OPERATIONS: dict[tuple[str, str], _Operation] = {
    ("status", "attribute_not_exists(job_id) OR NOT FINAL"): LocalJobsTable._start,
    ("status", "attribute_exists(job_id) AND NOT FINAL"): LocalJobsTable._finish,
    ("progress", "status = :running"): LocalJobsTable._progress,
    ("cancel", "status = :running"): LocalJobsTable._ask_cancel,
    ("status", "attribute_not_exists(job_id) OR status = :failed"): LocalJobsTable._stop,
}
"""(first attribute set, condition) of each ``DynamoJobStore`` update -> what it does here."""


class _Values:
    """The request's ``:name`` values, by name."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def text(self, name: str) -> str | None:
        value = self._values.get(f":{name}", {}).get("S")
        return None if value is None else str(value)

    def number(self, name: str) -> float | None:
        value = self._values.get(f":{name}", {}).get("N")
        return None if value is None else float(value)


def _job_id(request: dict[str, Any]) -> str:
    try:
        return str(request["Key"]["job_id"]["S"])
    except (KeyError, TypeError):
        raise TableError(
            "ValidationException", "the jobs table's key is the string attribute job_id"
        ) from None


def _resolve(expression: str, request: dict[str, Any]) -> str:
    """``expression`` with each ``#name`` placeholder replaced by the attribute it names."""
    names: dict[str, str] = request.get("ExpressionAttributeNames") or {}
    return _MARK.sub(lambda m: str(names.get(m.group(0), m.group(0))), expression).strip()


def _item(state: JobState) -> dict[str, Any]:
    """The state as the item ``DynamoJobStore`` reads back (``_state``)."""
    item: dict[str, Any] = {
        "job_id": {"S": state.job_id},
        "queue": {"S": state.queue},
        "status": {"S": state.status},
        "attempts": _number(state.attempts),
        "cancel": {"BOOL": state.cancel_requested},
    }
    texts = {
        "result": None if state.result is None else json.dumps(state.result),
        "error": None if state.error is None else json.dumps(state.error),
        "progress_message": state.progress_message,
        "user_id": state.user,
    }
    item.update({name: {"S": text} for name, text in texts.items() if text is not None})
    numbers = {
        "progress": state.progress,
        "queued_at": state.queued_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
    }
    item.update({name: _number(n) for name, n in numbers.items() if n is not None})
    return item


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(str(value)))}


def _size(state: JobState, result: str | None, error: str | None, message: str | None) -> int:
    """The item's size once finished, as DynamoDB counts it (names plus values, in UTF-8;
    numbers about one byte per two digits): what the 400 KB item limit applies to."""
    item = _item(state)
    for name, text in (("result", result), ("error", error), ("progress_message", message)):
        if text is not None:
            item[name] = {"S": text}
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "S" in value:
            size += len(str(value["S"]).encode("utf-8", "surrogatepass"))
        elif "N" in value:
            size += 1 + (len(str(value["N"])) + 1) // 2
        else:
            size += 1
    return size
