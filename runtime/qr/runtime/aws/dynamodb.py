"""The WebSocket connection registry and presence on DynamoDB (table ``QR_CONNECTIONS_TABLE``).

The table (created by Terraform) has a string hash key ``pk``, a string range key ``sk`` and TTL
on ``expires_at``. Two kinds of items:

* ``pk = "conn#<connection id>", sk = "conn"``: one per open connection, with ``user_id`` once the
  connection is authenticated;
* ``pk = "user#<user id>", sk = "conn#<connection id>"``: one per (user, connection), so a user's
  connections are one Query away (``socket.to(user).send()``, ``is_online``).

Items expire after ``ttl`` seconds (API Gateway closes a WebSocket after 2 hours at most), so a
missed ``$disconnect`` cannot leave a user online for ever; DynamoDB deletes expired items lazily,
so reads skip them too. "Came online" / "went offline" are decided from the user's other
connections at the moment of the change: two connections racing may both see the other, which
errs on the side of an extra on_online/on_offline call rather than a missing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from qr.runtime.aws._clients import Clients

CONNECTION_TTL_SECONDS = 3 * 3600
"""Longer than API Gateway's 2-hour WebSocket connection limit."""
TTL_ATTRIBUTE = "expires_at"


class DynamoConnections:
    """The ``ConnectionRegistry`` of the Lambda platform."""

    def __init__(
        self,
        table: str,
        clients: Clients,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = CONNECTION_TTL_SECONDS,
    ) -> None:
        self.table = table
        self._clients = clients
        self._clock = clock
        self._ttl = ttl

    def _db(self) -> Any:
        return self._clients.get("dynamodb")

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(self._clock() + self._ttl))}

    def connect(self, connection_id: str) -> None:
        self._db().put_item(
            TableName=self.table,
            Item={
                "pk": {"S": _conn(connection_id)},
                "sk": {"S": "conn"},
                "connected_at": {"N": str(int(self._clock()))},
                TTL_ATTRIBUTE: self._expires(),
            },
        )

    def bind_user(self, connection_id: str, user_id: str) -> bool:
        others = [c for c in self.connections(user_id) if c != connection_id]
        self._db().update_item(
            TableName=self.table,
            Key={"pk": {"S": _conn(connection_id)}, "sk": {"S": "conn"}},
            UpdateExpression="SET user_id = :user, #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":user": {"S": user_id}, ":ttl": self._expires()},
        )
        self._db().put_item(
            TableName=self.table,
            Item={
                "pk": {"S": _user(user_id)},
                "sk": {"S": _conn(connection_id)},
                TTL_ATTRIBUTE: self._expires(),
            },
        )
        return not others

    def disconnect(self, connection_id: str) -> tuple[str | None, bool]:
        response = self._db().delete_item(
            TableName=self.table,
            Key={"pk": {"S": _conn(connection_id)}, "sk": {"S": "conn"}},
            ReturnValues="ALL_OLD",
        )
        user_id = response.get("Attributes", {}).get("user_id", {}).get("S")
        if user_id is None:
            return None, False
        self._db().delete_item(
            TableName=self.table,
            Key={"pk": {"S": _user(user_id)}, "sk": {"S": _conn(connection_id)}},
        )
        return user_id, not self.connections(user_id)

    def user_of(self, connection_id: str) -> str | None:
        item = (
            self._db()
            .get_item(
                TableName=self.table,
                Key={"pk": {"S": _conn(connection_id)}, "sk": {"S": "conn"}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item or self._expired(item):
            return None
        value = item.get("user_id", {}).get("S")
        return None if value is None else str(value)

    def connections(self, user_id: str) -> Sequence[str]:
        found: list[str] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _user(user_id)}},
            "ConsistentRead": True,
        }
        while True:
            page = self._db().query(**request)
            found += [
                item["sk"]["S"].removeprefix("conn#")
                for item in page.get("Items", [])
                if not self._expired(item)
            ]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def is_online(self, user_id: str) -> bool:
        return bool(self.connections(user_id))

    def _expired(self, item: dict[str, Any]) -> bool:
        expires = item.get(TTL_ATTRIBUTE, {}).get("N")
        return expires is not None and float(expires) < self._clock()


def _conn(connection_id: str) -> str:
    return f"conn#{connection_id}"


def _user(user_id: str) -> str:
    return f"user#{user_id}"
