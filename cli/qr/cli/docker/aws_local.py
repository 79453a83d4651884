"""Local stand-ins for the AWS APIs the production adapters call from inside a container.

Under ``--docker`` the function runs the same ``qr.runtime.aws`` adapters as in production; boto3
inside the container is pointed here with ``AWS_ENDPOINT_URL_SQS`` / ``_DYNAMODB`` / ``_SSM`` and
``QR_WS_ENDPOINT``. Only the calls those adapters make are served, each mapped onto the local
platform:

* ``/sqs`` (JSON protocol): ``SendMessage`` → the local ``QueuePort`` (the SQLite engine), with the
  queue name taken from the queue URL (``QR_QUEUE_URL_PREFIX`` + name) and the shared message
  attributes (``content_type``, ``user_id``, ``param_*``, and ``qr_debounce``: a debounced push)
  turned back into an ``OutgoingJob``;
  ``ChangeMessageVisibility`` → ``extend(receipt handle, seconds)`` of the job runner;
  ``GetQueueUrl``.
* ``/ws/@connections/{id}`` (the API Gateway management API): ``POST`` → ``SocketPort.send``
  (``410 GoneException`` when the connection is gone), ``DELETE`` → ``close``, ``GET`` → 200/410.
* ``/dynamodb`` (JSON protocol): on the jobs table (``QR_JOBS_TABLE``) the requests of
  ``DynamoJobStore``, applied to the dev server's job state (``jobs_table``); on the flow table
  (``QR_FLOW_TABLE``) the requests of the flow adapters, answered from the dev server's flow
  state (``flow_table``); on any other table
  ``PutItem``, ``GetItem``, ``UpdateItem`` (``SET`` clauses only), ``DeleteItem``
  (``ReturnValues=ALL_OLD``) and ``Query`` (equality on the hash key) on an in-memory table keyed
  by ``pk``/``sk``: the connection registry's item store.
* ``/ssm`` (JSON 1.1 protocol): ``GetParametersByPath`` (``Recursive``, ``MaxResults`` and
  ``NextToken`` pages, ``WithDecryption`` accepted) over the dev environment, each variable a
  parameter ``ssm_path + NAME``: what the entry point loads into ``os.environ`` at cold start.
  ``parameters`` is called on every request, so containers started after a ``.env`` change
  read the new values.

Anything else is a 400 naming the unsupported call, so a new adapter call shows up at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from qr.cli.docker._http import Handler, Serving
from qr.cli.docker.events import ACCOUNT
from qr.cli.docker.flow_table import LocalFlowTable
from qr.cli.docker.jobs_table import LocalJobsTable, TableError
from qr.runtime.aws.sqs import DEBOUNCE_ATTRIBUTE
from qr.runtime.ports import OutgoingJob, QueuePort, SocketPort

HASH_KEY, RANGE_KEY = "pk", "sk"
"""The connections table's key schema (as Terraform creates it)."""

Extend = Callable[[str, float], bool]
"""``extend(receipt_handle, seconds)``: ``False`` when that receipt is not in flight."""


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class LocalAws:
    """What the endpoints act on; ``queue_prefix`` is the queue names' ``<name>-<stage>-``."""

    queues: QueuePort
    sockets: SocketPort
    queue_prefix: str
    extend: Extend = lambda receipt, seconds: False
    ssm_path: str = "/"
    """The parameters' path (``QR_SSM_PATH``), ending in ``/``."""
    parameters: Callable[[], Mapping[str, str]] = dict
    """The dev environment, served as the parameters under ``ssm_path``."""
    region: str = "us-east-1"
    jobs: LocalJobsTable | None = None
    """The jobs table, served from the dev server's job state (``None``: not served)."""
    flow: LocalFlowTable | None = None
    """The flow table, served from the dev server's flow state (``None``: not served)."""
    tables: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- SQS -----------------------------------------------------------------------------------

    def queue_name(self, url: str) -> str:
        short = unquote(url.rstrip("/").rsplit("/", 1)[-1])
        if not short.startswith(self.queue_prefix) or short == self.queue_prefix:
            raise AwsError(400, "AWS.SimpleQueueService.NonExistentQueue", f"no such queue: {url}")
        return short[len(self.queue_prefix) :]

    def sqs(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action == "SendMessage":
            return self._send_message(request)
        if action == "ChangeMessageVisibility":
            seconds = float(request.get("VisibilityTimeout", 0))
            if not self.extend(str(request.get("ReceiptHandle", "")), seconds):
                raise AwsError(400, "MessageNotInflight", "the message is not in flight")
            return {}
        if action == "GetQueueUrl":
            name = str(request.get("QueueName", ""))
            return {"QueueUrl": f"/{ACCOUNT}/{name}"}
        raise AwsError(400, "UnsupportedOperation", f"qr dev --docker does not serve SQS {action}")

    def _send_message(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue_name(str(request.get("QueueUrl", "")))
        attributes = {
            key: str(value.get("StringValue", ""))
            for key, value in (request.get("MessageAttributes") or {}).items()
        }
        params = {
            key.removeprefix("param_"): value
            for key, value in attributes.items()
            if key.startswith("param_")
        }
        job = OutgoingJob(
            queue=queue,
            body=str(request.get("MessageBody", "")),
            content_type=attributes.get("content_type", "text/plain; charset=utf-8"),
            group_id=request.get("MessageGroupId"),
            dedupe_id=request.get("MessageDeduplicationId"),
            delay=float(request.get("DelaySeconds") or 0),
            user_id=attributes.get("user_id"),
            params=params,
            debounce_key=attributes.get(DEBOUNCE_ATTRIBUTE),
        )
        try:
            job_id = self.queues.send(job)
        except (KeyError, ValueError) as exc:
            raise AwsError(400, "InvalidParameterValue", str(exc)) from None
        return {"MessageId": job_id}

    # -- API Gateway management API ------------------------------------------------------------

    def connection(self, method: str, connection_id: str, data: bytes) -> tuple[int, Any]:
        if method == "POST":
            payload: str | bytes
            try:
                payload = data.decode("utf-8")
            except UnicodeDecodeError:
                payload = data
            if not self.sockets.send(connection_id, payload):
                raise AwsError(410, "GoneException", f"connection {connection_id} is gone")
            return 200, b""
        if method == "DELETE":
            self.sockets.close(connection_id)
            return 204, b""
        raise AwsError(400, "UnsupportedOperation", f"{method} @connections is not served")

    # -- SSM Parameter Store ------------------------------------------------------------------

    def ssm(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action != "GetParametersByPath":
            raise AwsError(
                400, "UnsupportedOperation", f"qr dev --docker does not serve SSM {action}"
            )
        path = str(request.get("Path", ""))
        if not path.startswith("/"):
            raise AwsError(400, "ValidationException", f"the path must start with /: {path!r}")
        if request.get("ParameterFilters"):
            raise AwsError(400, "ValidationException", "ParameterFilters are not served")
        size = int(request.get("MaxResults") or SSM_PAGE)
        if not 1 <= size <= SSM_PAGE:
            raise AwsError(400, "ValidationException", f"MaxResults must be 1-{SSM_PAGE}")
        prefix = path if path.endswith("/") else path + "/"
        recursive = bool(request.get("Recursive"))
        found = []
        for key, value in self.parameters().items():
            name = self.ssm_path + key
            below = name[len(prefix) :] if name.startswith(prefix) else ""
            if below and (recursive or "/" not in below):
                found.append((name, value))
        found.sort()
        start = _page_start(request.get("NextToken"), len(found))
        page = found[start : start + size]
        answer: dict[str, Any] = {"Parameters": [self._parameter(n, v) for n, v in page]}
        if start + size < len(found):
            answer["NextToken"] = str(start + size)
        return answer

    def _parameter(self, name: str, value: str) -> dict[str, Any]:
        return {
            "Name": name,
            "Type": "String",
            "Value": value,
            "Version": 1,
            "ARN": f"arn:aws:ssm:{self.region}:{ACCOUNT}:parameter{name}",
            "DataType": "text",
        }

    # -- DynamoDB ------------------------------------------------------------------------------

    def dynamodb(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if self.jobs is not None and request.get("TableName") == self.jobs.table:
            try:
                return self.jobs.serve(action, request)
            except TableError as exc:
                raise AwsError(400, exc.code, exc.message) from None
        if self.flow is not None and request.get("TableName") == self.flow.table:
            try:
                return self.flow.serve(action, request)
            except TableError as exc:
                raise AwsError(400, exc.code, exc.message) from None
        with self.lock:
            table = self.tables.setdefault(str(request.get("TableName", "")), {})
            if action == "PutItem":
                item = dict(request["Item"])
                table[_key(item)] = item
                return {}
            if action == "GetItem":
                found = table.get(_key(request["Key"]))
                return {"Item": found} if found is not None else {}
            if action == "DeleteItem":
                old = table.pop(_key(request["Key"]), None)
                wants_old = request.get("ReturnValues") == "ALL_OLD"
                return {"Attributes": old} if wants_old and old is not None else {}
            if action == "UpdateItem":
                key = _key(request["Key"])
                item = table.setdefault(key, dict(request["Key"]))
                item.update(_set_clauses(request))
                return {}
            if action == "Query":
                items = _query(table, request)
                return {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        raise AwsError(
            400, "UnknownOperationException", f"qr dev --docker does not serve DynamoDB {action}"
        )


SSM_PAGE = 10
"""GetParametersByPath's largest (and default) page."""


def _page_start(token: object, total: int) -> int:
    if token is None:
        return 0
    text = str(token)
    if not text.isdigit() or int(text) > total:
        raise AwsError(400, "ValidationException", f"invalid NextToken {text!r}")
    return int(text)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    try:
        return str(item[HASH_KEY]["S"]), str(item[RANGE_KEY]["S"])
    except KeyError:
        raise AwsError(
            400, "ValidationException", f"the key needs string {HASH_KEY} and {RANGE_KEY}"
        ) from None


def _names(request: dict[str, Any]) -> Callable[[str], str]:
    names = request.get("ExpressionAttributeNames") or {}
    return lambda token: str(names.get(token, token))


def _set_clauses(request: dict[str, Any]) -> dict[str, Any]:
    expression = str(request.get("UpdateExpression", "")).strip()
    if not expression.upper().startswith("SET "):
        raise AwsError(400, "ValidationException", f"only SET updates are served: {expression}")
    name, values = _names(request), request.get("ExpressionAttributeValues") or {}
    result: dict[str, Any] = {}
    for clause in expression[4:].split(","):
        left, _, right = clause.partition("=")
        if right.strip() not in values:
            raise AwsError(400, "ValidationException", f"unsupported SET clause: {clause}")
        result[name(left.strip())] = values[right.strip()]
    return result


def _query(table: dict[tuple[str, str], dict[str, Any]], request: dict[str, Any]) -> list[Any]:
    condition = str(request.get("KeyConditionExpression", ""))
    left, _, right = condition.partition("=")
    values = request.get("ExpressionAttributeValues") or {}
    if _names(request)(left.strip()) != HASH_KEY or right.strip() not in values:
        raise AwsError(400, "ValidationException", f"only `{HASH_KEY} = :v` queries: {condition}")
    wanted = str(values[right.strip()]["S"])
    return [item for (pk, _), item in sorted(table.items()) if pk == wanted]


class LocalAwsServer(Serving):
    """Serves ``LocalAws`` on ``/sqs``, ``/dynamodb``, ``/ssm`` and ``/ws``."""

    def __init__(self, aws: LocalAws, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(type("LocalAwsHandler", (_AwsHandler,), {"aws": aws}), host, port)

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"


class _AwsHandler(Handler):
    aws: LocalAws

    def do_POST(self) -> None:
        body = self.read_body()
        try:
            if self.path.startswith("/ws/@connections/"):
                status, answer = self.aws.connection("POST", self._connection_id(), body)
                self.reply(status, answer)
                return
            target = self.headers.get("X-Amz-Target", "")
            service, _, action = target.partition(".")
            request = _json(body)
            if self.path.rstrip("/") == "/sqs" and service == "AmazonSQS":
                self.reply(200, self.aws.sqs(action, request), _JSON_10)
            elif self.path.rstrip("/") == "/dynamodb" and service.startswith("DynamoDB_"):
                self.reply(200, self.aws.dynamodb(action, request), _JSON_10)
            elif self.path.rstrip("/") == "/ssm" and service == "AmazonSSM":
                self.reply(200, self.aws.ssm(action, request), _JSON_11)
            else:
                raise AwsError(400, "UnsupportedOperation", f"not served: {self.path} {target}")
        except AwsError as exc:
            self._error(exc)

    def do_DELETE(self) -> None:
        try:
            if not self.path.startswith("/ws/@connections/"):
                raise AwsError(404, "NotFoundException", f"not served: {self.path}")
            status, answer = self.aws.connection("DELETE", self._connection_id(), b"")
            self.reply(status, answer)
        except AwsError as exc:
            self._error(exc)

    def _connection_id(self) -> str:
        return unquote(self.path.removeprefix("/ws/@connections/"))

    def _error(self, exc: AwsError) -> None:
        self.reply(
            exc.status,
            {"__type": exc.code, "message": exc.message},
            {"x-amzn-ErrorType": exc.code, **_JSON_10},
        )


_JSON_10 = {"Content-Type": "application/x-amz-json-1.0"}
_JSON_11 = {"Content-Type": "application/x-amz-json-1.1"}


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise AwsError(400, "SerializationException", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise AwsError(400, "SerializationException", "the request body is not a JSON object")
    return value
