"""WebSocket sends on API Gateway: the management API's ``@connections`` endpoint.

The endpoint is ``QR_WS_ENDPOINT`` (``https://{api_id}.execute-api.{region}.amazonaws.com/{stage}``,
set by Terraform). A connection that is already gone answers 410 (GoneException): the adapter
then forgets it in the connection registry and reports ``False``, as the ``SocketPort`` contract
says, so ``socket.to(user).send()`` keeps working when one of a user's tabs has closed.
"""

from __future__ import annotations

import logging

from qr.runtime.aws._clients import Clients, error_code, http_status
from qr.runtime.ports import ConnectionRegistry

log = logging.getLogger("qr.sockets")


class ApiGatewaySockets:
    """The ``SocketPort`` of the Lambda platform."""

    def __init__(self, endpoint: str, connections: ConnectionRegistry, clients: Clients) -> None:
        self.endpoint = endpoint
        self._connections = connections
        self._clients = clients

    def send(self, connection_id: str, data: str | bytes) -> bool:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        try:
            self._clients.get("apigatewaymanagementapi", self.endpoint).post_to_connection(
                ConnectionId=connection_id, Data=payload
            )
        except Exception as exc:
            if not _gone(exc):
                raise
            log.info("connection %s is gone; forgetting it", connection_id)
            self._connections.disconnect(connection_id)
            return False
        return True

    def close(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        # API Gateway closes with its own code; the management API takes no code or reason.
        try:
            self._clients.get("apigatewaymanagementapi", self.endpoint).delete_connection(
                ConnectionId=connection_id
            )
        except Exception as exc:
            if not _gone(exc):
                raise
        self._connections.disconnect(connection_id)


def _gone(exc: BaseException) -> bool:
    return error_code(exc) == "GoneException" or http_status(exc) == 410
