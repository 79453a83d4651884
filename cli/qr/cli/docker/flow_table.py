"""The flow-control table (``QR_FLOW_TABLE``) of ``qr dev --docker``, kept in the dev server's flow state.

The function in the container keeps the production flow adapters (``qr.runtime.aws.flow``); their
DynamoDB requests on the flow table arrive here (through ``aws_local``) and are answered so that
flow control means what it means under plain ``qr dev``, where the engine does it
(``qr.runtime.local.flow``). Each item kind is told by its key (``pk`` prefix and ``sk``):

* rate-limit buckets (``rate#<bucket>`` / ``bucket``; ``DynamoBuckets.take`` before a job runs):
  the dev server's engine has already taken the job's token when it claimed the job, in the
  claim's transaction, and postponed the jobs over the limit without counting an attempt (what
  plain ``qr dev`` does; on AWS the function checks, SQS counts the receive). A second token
  taken here would halve the rate, so the function's check always admits: ``GetItem`` finds no
  item (a full bucket) and ``PutItem`` on condition ``attribute_not_exists(pk)`` succeeds without
  storing anything. The buckets the limit is enforced with are the engine's;
* debounce versions (``debounce#<queue>#<key>`` / ``version``; ``DynamoDebounce``): the
  ``UpdateItem`` ``ADD version :one`` of a debounced push gets the key's next version (counted
  here, in memory) for the message attribute; the push itself (``SendMessage`` with
  ``qr_debounce``) reaches the engine as a debounced push, which replaces the key's waiting job
  as under plain ``qr dev``. ``GetItem`` answers the key's latest version (the jobs the dev
  server hands the function carry no version, so it never drops one: the engine already has);
* chain steps (``step#<job id>-<index>`` / ``step``; ``DynamoSteps``): the engine's ``steps``
  records (``LocalSteps``), which plain ``qr dev`` keeps for the same keys. ``PutItem`` of a
  ``pending`` step on condition ``attribute_not_exists(pk)`` fails with
  ``ConditionalCheckFailedException`` once the step was pushed, and ``GetItem`` then reads it
  ``sent`` with the job id; ``UpdateItem`` ``SET #status = :sent, pushed = :pushed`` records
  it. A ``pending`` mark is not kept: the adapter sends a step again whether it finds none or a
  ``pending`` one.

Any other request on the table is a ``ValidationException`` naming it.
"""

from __future__ import annotations

import threading
from typing import Any

from qr.cli.docker.jobs_table import TableError
from qr.runtime.local.flow import LocalSteps

_CHECK_FAILED = ("ConditionalCheckFailedException", "The conditional request failed")
_NEW = "attribute_not_exists(pk)"


class LocalFlowTable:
    """Serves the flow adapters' requests on table ``table`` from the engine's ``steps``."""

    def __init__(self, table: str, steps: LocalSteps) -> None:
        self.table = table
        self.steps = steps
        self._versions: dict[str, int] = {}
        """Debounce versions by item key (``debounce#<queue>#<key>``)."""
        self._lock = threading.Lock()

    def serve(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action not in ("GetItem", "PutItem", "UpdateItem"):
            raise self._unserved(action)
        pk, sk = _key(request.get("Item") if action == "PutItem" else request.get("Key"))
        kind = pk.split("#", 1)[0]
        shape = (action, kind, sk)
        if shape == ("GetItem", "rate", "bucket"):
            return {}  # a full bucket: the claim took this job's token (module docstring)
        if shape == ("PutItem", "rate", "bucket"):
            return self._put_bucket(request)
        if shape == ("UpdateItem", "debounce", "version"):
            return self._bump(pk, request)
        if shape == ("GetItem", "debounce", "version"):
            return self._latest(pk)
        if shape == ("PutItem", "step", "step"):
            return self._begin_step(pk, request)
        if shape == ("GetItem", "step", "step"):
            return self._get_step(pk)
        if shape == ("UpdateItem", "step", "step"):
            return self._step_sent(pk, request)
        raise self._unserved(f"{action} of the item ({pk!r}, {sk!r})")

    def _unserved(self, what: str) -> TableError:
        return TableError(
            "ValidationException",
            f"qr dev --docker does not serve DynamoDB {what} on the flow table {self.table} "
            "(it serves the requests of qr's DynamoBuckets, DynamoDebounce and DynamoSteps)",
        )

    def _put_bucket(self, request: dict[str, Any]) -> dict[str, Any]:
        condition = str(request.get("ConditionExpression", "")).strip()
        if condition == _NEW:
            return {}
        if condition == "version = :seen":  # never read, so it does not exist: as DynamoDB
            raise TableError(*_CHECK_FAILED)
        raise self._unserved(f"PutItem of a bucket on condition {condition!r}")

    def _bump(self, pk: str, request: dict[str, Any]) -> dict[str, Any]:
        expression = str(request.get("UpdateExpression", "")).strip()
        values: dict[str, Any] = request.get("ExpressionAttributeValues") or {}
        if not expression.startswith("ADD version :one") or values.get(":one") != {"N": "1"}:
            raise self._unserved(f"UpdateItem {expression!r} of a debounce version")
        with self._lock:
            version = self._versions.get(pk, 0) + 1
            self._versions[pk] = version
        attributes: dict[str, Any] = {"version": {"N": str(version)}}
        if ":expires" in values:
            attributes["expires_at"] = values[":expires"]
        return {"Attributes": attributes} if request.get("ReturnValues") == "UPDATED_NEW" else {}

    def _latest(self, pk: str) -> dict[str, Any]:
        with self._lock:
            version = self._versions.get(pk)
        if version is None:
            return {}
        return {"Item": {"pk": {"S": pk}, "sk": {"S": "version"}, "version": {"N": str(version)}}}

    def _begin_step(self, pk: str, request: dict[str, Any]) -> dict[str, Any]:
        condition = str(request.get("ConditionExpression", "")).strip()
        if condition != _NEW:
            raise self._unserved(f"PutItem of a chain step on condition {condition!r}")
        if self.steps.pushed(pk.removeprefix("step#")) is not None:
            raise TableError(*_CHECK_FAILED)
        return {}

    def _get_step(self, pk: str) -> dict[str, Any]:
        pushed = self.steps.pushed(pk.removeprefix("step#"))
        if pushed is None:
            return {}
        item = {"pk": {"S": pk}, "sk": {"S": "step"}, "status": {"S": "sent"}}
        return {"Item": {**item, "pushed": {"S": pushed}}}

    def _step_sent(self, pk: str, request: dict[str, Any]) -> dict[str, Any]:
        names: dict[str, str] = request.get("ExpressionAttributeNames") or {}
        values: dict[str, Any] = request.get("ExpressionAttributeValues") or {}
        expression = str(request.get("UpdateExpression", "")).strip()
        pushed = values.get(":pushed", {}).get("S")
        if (
            expression != "SET #status = :sent, pushed = :pushed"
            or names.get("#status") != "status"
            or values.get(":sent") != {"S": "sent"}
            or pushed is None
        ):
            raise self._unserved(f"UpdateItem {expression!r} of a chain step")
        self.steps.record(pk.removeprefix("step#"), str(pushed))
        return {}


def _key(item: object) -> tuple[str, str]:
    if isinstance(item, dict):
        try:
            return str(item["pk"]["S"]), str(item["sk"]["S"])
        except (KeyError, TypeError):
            pass
    raise TableError(
        "ValidationException", "the flow table's key is the string attributes pk and sk"
    )
