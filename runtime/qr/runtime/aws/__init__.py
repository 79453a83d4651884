"""The Lambda platform: AWS adapters behind ``qr.runtime.ports`` and the entry point.

* ``sqs.SqsQueues`` - queue pushes (SendMessage) and visibility changes;
* ``apigateway.ApiGatewaySockets`` - WebSocket send/close through the management API;
* ``dynamodb.DynamoConnections`` - connection registry and presence;
* ``job_state.DynamoJobStore`` - job state (``QR_JOBS_TABLE``; none when the variable is unset);
* ``flow.DynamoBuckets`` / ``flow.DynamoDebounce`` / ``flow.DynamoSteps`` - rate-limit buckets,
  debounce versions and chain step records on the flow table;
* ``ssm.load_parameters`` - stage settings and secrets into ``os.environ`` at cold start;
* ``jsonlog`` - JSON log lines;
* ``entry.handler`` - the function's handler (``qr.runtime.aws.entry.handler``).

``lambda_platform(environ)`` wires the adapters from the ``QR_*`` variables Terraform sets. boto3
is imported only when an adapter first talks to AWS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from qr.runtime.aws._clients import Clients
from qr.runtime.aws.apigateway import ApiGatewaySockets
from qr.runtime.aws.dynamodb import DynamoConnections
from qr.runtime.aws.flow import DynamoDebounce, DynamoSteps
from qr.runtime.aws.job_state import DynamoJobStore
from qr.runtime.aws.sqs import SqsQueues
from qr.runtime.ports import Platform


def lambda_platform(
    environ: Mapping[str, str] | None = None, clients: Clients | None = None
) -> Platform:
    env = os.environ if environ is None else environ
    clients = clients or Clients()
    connections = DynamoConnections(env.get("QR_CONNECTIONS_TABLE", ""), clients)
    flow_table = env.get("QR_FLOW_TABLE")
    debounce = DynamoDebounce(flow_table, clients) if flow_table else None
    steps = DynamoSteps(flow_table, clients) if flow_table else None
    return Platform(
        name="lambda",
        queues=SqsQueues(env.get("QR_QUEUE_URL_PREFIX", ""), clients, debounce, steps),
        sockets=ApiGatewaySockets(env.get("QR_WS_ENDPOINT", ""), connections, clients),
        connections=connections,
        base_url=env.get("QR_BASE_URL", ""),
        jobs=DynamoJobStore(env["QR_JOBS_TABLE"], clients) if env.get("QR_JOBS_TABLE") else None,
    )
