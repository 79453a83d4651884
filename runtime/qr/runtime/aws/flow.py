"""Flow-control state on DynamoDB (table ``QR_FLOW_TABLE``, created by Terraform).

The table has a string hash key ``pk``, a string range key ``sk`` and TTL on ``expires_at``, like
the connections table. A rate-limit bucket is the item ``pk = "rate#<bucket id>", sk = "bucket"``
with ``tokens``, ``updated_ms`` and a write counter ``version``. ``DynamoBuckets.take`` reads it
(strongly consistent), computes the refill (``qr.runtime.flow.take``) and writes it back on
condition that nobody wrote it meanwhile (``version`` unchanged, or the item still absent); a
lost race reads again. Every
function instance therefore shares one bucket per key. An item expires once its bucket would be
full again anyway (``per`` seconds after the last take, plus a minute).

Debounce keys are items ``pk = "debounce#<queue>#<key>", sk = "version"`` with a counter
``version``. A debounced push bumps it (an atomic ``ADD``) and sends the message delayed by the
window with the key and the new version as message attributes; when it arrives, it runs only if
its version is still the latest (``DynamoDebounce.latest``), otherwise it is dropped as
superseded. The item expires a day after the window of its last push.
"""

from __future__ import annotations

from typing import Any

from qr.runtime import flow
from qr.runtime.aws._clients import DynamoTable, error_code
from qr.runtime.flow import Bucket, RateLimit

TTL_ATTRIBUTE = "expires_at"
_RACES = 8
"""Conditional-write attempts before giving up on a hot bucket (then the job waits a token)."""


class DynamoBuckets(DynamoTable):
    """The ``BucketStore`` of the Lambda platform."""

    def take(self, bucket: str, limit: RateLimit) -> float:
        db = self._clients.get("dynamodb")
        key = {"pk": {"S": f"rate#{bucket}"}, "sk": {"S": "bucket"}}
        for _ in range(_RACES):
            item = db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            now = self._clock()
            current = None
            if item is not None:
                current = Bucket(float(item["tokens"]["N"]), int(item["updated_ms"]["N"]) / 1000)
            state, wait = flow.take(current, limit, now)
            if wait > 0:
                return wait
            request: dict[str, Any] = {
                "TableName": self.table,
                "Item": {
                    **key,
                    "tokens": {"N": repr(state.tokens)},
                    "updated_ms": {"N": str(int(now * 1000))},
                    "version": {"N": str(int(item["version"]["N"]) + 1 if item else 1)},
                    TTL_ATTRIBUTE: {"N": str(int(now + limit.per + 60))},
                },
            }
            if item is None:
                request["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                request["ConditionExpression"] = "version = :seen"
                request["ExpressionAttributeValues"] = {":seen": item["version"]}
            try:
                db.put_item(**request)
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                continue  # another instance took a token meanwhile: read again
            return 0.0
        return 1.0 / limit.rate


DEBOUNCE_RETENTION = 86_400
"""Seconds a debounce version outlives its window (a late duplicate still finds it)."""


class DynamoDebounce(DynamoTable):
    """Debounce versions per (queue, key) on the flow table."""

    def _key(self, queue: str, key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"debounce#{queue}#{key}"}, "sk": {"S": "version"}}

    def bump(self, queue: str, key: str, window: float) -> int:
        """The key's next version (1, 2, ...), stored before the message is sent."""
        expires = int(self._clock() + window + DEBOUNCE_RETENTION)
        response = self._clients.get("dynamodb").update_item(
            TableName=self.table,
            Key=self._key(queue, key),
            UpdateExpression="ADD version :one SET #ttl = :expires",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(expires)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["version"]["N"])

    def latest(self, queue: str, key: str) -> int | None:
        item = (
            self._clients.get("dynamodb")
            .get_item(TableName=self.table, Key=self._key(queue, key), ConsistentRead=True)
            .get("Item")
        )
        return None if item is None else int(item["version"]["N"])


STEP_RETENTION = 14 * 86_400
"""Seconds a chain step record is kept: longer than SQS keeps any message (14 days)."""


class DynamoSteps(DynamoTable):
    """Chain step records (``pk = "step#<job id>-<index>", sk = "step"``) on the flow table."""

    def _key(self, key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"step#{key}"}, "sk": {"S": "step"}}

    def begin(self, key: str) -> str | None:
        """Record the step as being pushed; returns the pushed job id if it already was."""
        db = self._clients.get("dynamodb")
        try:
            db.put_item(
                TableName=self.table,
                Item={
                    **self._key(key),
                    "status": {"S": "pending"},
                    TTL_ATTRIBUTE: {"N": str(int(self._clock() + STEP_RETENTION))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            item = db.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True)
            found = item.get("Item") or {}
            if found.get("status", {}).get("S") == "sent":
                return str(found.get("pushed", {}).get("S", ""))
        return None  # new, or an earlier attempt died before it was sent: send it

    def done(self, key: str, pushed: str) -> None:
        self._clients.get("dynamodb").update_item(
            TableName=self.table,
            Key=self._key(key),
            UpdateExpression="SET #status = :sent, pushed = :pushed",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":sent": {"S": "sent"}, ":pushed": {"S": pushed}},
        )
