"""AWS-shaped events through the *built* bundle, as Lambda runs it.

A project is built into a zip with ``build_bundle``; the zip is extracted and its entry point,
``qr.runtime.aws.entry.handler``, runs in a fresh interpreter (``python -I -S``) whose sys.path is
the bundle plus boto3 (which every Lambda Python runtime provides). AWS is a moto server: queue
pushes land in SQS, socket replies in the management API, connections in DynamoDB, settings come
from SSM. Event fixtures: tests/fixtures/events/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.backends import get_backend

from qr.cli.bundle import build_bundle
from qr.cli.scaffold import Answers, render
from qr.runtime.manifest import scan
from tests.integration.lambda_support import (
    create_connections_table,
    moto_server,
    provided_dir,
)
from tests.integration.test_dev_server import WHOAMI

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
REGION = "us-east-1"
LOCAL = "python{}.{}".format(*sys.version_info[:2])
ACCOUNT = "123456789012"

PROJECT = {
    "qr.yaml": f"name: demo\nruntime: {LOCAL}\narchitecture: x86_64\n",
    "lib/__init__.py": "",
    "lib/record.py": """
        import os

        def record(line):
            with open(os.environ["QR_TEST_LOG"], "a") as f:
                f.write(line + "\\n")
    """,
    "api/items/[id].py": """
        def get(id, query, cookies, headers, request_id):
            return {
                "id": id,
                "tags": query.getlist("tag"),
                "q": query.get("q"),
                "session": cookies.get("session"),
                "theme": cookies.get("theme"),
                "custom": headers.get("x-custom"),
                "request_id": request_id,
            }
    """,
    "api/items/index.py": """
        from qr.runtime import Response, queues

        def post(body):
            job_id = queues["emails"].push({"to": "a@example.com", "item": body["name"]})
            response = Response.json({"created": body["name"], "job_id": job_id}, status=201)
            response.set_cookie("first", "1")
            response.set_cookie("second", "2")
            return response
    """,
    "api/forms.py": """
        def post(body):
            out = {"name": body.get("name") or body.get("title"), "tags": body.getlist("tags")}
            photo = body.get("photo")
            if photo is not None:
                out["photo"] = {
                    "name": photo.name,
                    "type": photo.content_type,
                    "size": photo.size,
                    "head": photo.read()[:4].hex(),
                }
            return out
    """,
    "api/image.png.py": """
        from qr.runtime import Response

        def get():
            return Response(bytes(range(256)), media_type="image/png")
    """,
    "api/files/[...path].py": """
        def get(path):
            return {"path": path}
    """,
    "api/blobs/[name].py": """
        def put(name, body):
            return body[::-1]
    """,
    "api/my/path.py": """
        config = {"accepts": ["application/json"]}

        def post(body, headers):
            return {"body": body, "length": headers.get("content-length")}
    """,
    "api/whoami.py": WHOAMI,
    "api/settings.py": """
        import os

        def get():
            return {"api_key": os.environ.get("API_KEY"), "stage": os.environ.get("QR_STAGE")}
    """,
    "queues/emails.py": """
        from lib.record import record

        config = {"backoff": {"strategy": "fixed", "initial": 0, "max": 0, "jitter": False}}

        def handler(payload, job):
            if payload.get("fail"):
                raise RuntimeError("cannot send")
            if payload.get("extend"):
                job.extend(120)
            record(f"emails {payload['to']} attempt={job.received_count}")
    """,
    "queues/quits.py": """
        import sys

        from lib.record import record

        def handler(payload):
            if payload.get("exit"):
                sys.exit(2)
            record(f"quits {payload['n']}")
    """,
    "api/quit.py": """
        import sys

        def get():
            sys.exit(1)
    """,
    "queues/orders.fifo.py": """
        from lib.record import record

        config = {"backoff": {"strategy": "fixed", "initial": 0, "max": 0, "jitter": False}}

        def handler(payload, group_id):
            if payload == "bad":
                raise ValueError("bad order")
            record(f"orders {group_id} {payload}")
    """,
    "socket/_middleware.py": """
        from qr.runtime import HTTPError

        def on_connect(request, connection_id):
            if request.query_params.get("token") != "letmein":
                raise HTTPError(401, "bad token")
    """,
    "socket/index.py": """
        def handler(data, connection_id):
            return {"echo": data}
    """,
    "socket/ping.py": """
        def handler(data, action):
            return {"pong": data["n"], "action": action}
    """,
    "schedules/cleanup.py": """
        from lib.record import record

        schedule = "0 3 * * *"

        def handler(job):
            record(f"schedule {job.schedule_name}")
    """,
}

DRIVER = """
import importlib.util, json, sys
bundle, provided = sys.argv[1], sys.argv[2]
sys.path[:0] = [bundle, provided]
assert importlib.util.find_spec("typer") is None and importlib.util.find_spec("moto") is None
import starlette
assert starlette.__file__.startswith(bundle), starlette.__file__

class Context:
    def __init__(self, number):
        self.aws_request_id = f"req-{number}"
        self.function_name = "demo-production"

    def get_remaining_time_in_millis(self):
        return 30_000

from qr.runtime.aws.entry import handler

results = []
for number, event in enumerate(json.load(sys.stdin)):
    try:
        results.append({"ok": handler(event, Context(number))})
    except Exception as exc:
        results.append({"raised": f"{type(exc).__name__}: {exc}"})
print("@@RESULTS@@" + json.dumps(results, default=repr))
"""


@dataclass
class Lambda:
    bundle: Path
    provided: Path
    env: dict[str, str]
    moto_url: str
    log: Path
    stderr: str = ""
    """The JSON log lines of the last invoke."""

    def invoke(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the events through the bundle's handler in one fresh interpreter."""
        self.log.write_text("")
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", DRIVER, str(self.bundle), str(self.provided)],
            input=json.dumps(list(events)),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.bundle,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        self.stderr = result.stderr
        marker = result.stdout.rindex("@@RESULTS@@")
        answers: list[dict[str, Any]] = json.loads(result.stdout[marker + len("@@RESULTS@@") :])
        return answers

    def records(self) -> list[str]:
        return self.log.read_text().splitlines()


def _client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def _deploy(base: Path, root: Path, moto_url: str, name: str = "demo") -> Lambda:
    """Build ``root`` and lay it out as a Lambda function would see it."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        built = build_bundle(
            scan(root), "production", base / "out", cache_dir=base.parent / "cache"
        )
    finally:  # the scan loaded the project's modules here (module-scoped: conftest cannot undo it)
        sys.path[:] = path
        for module in set(sys.modules) - modules:
            if module.startswith(("qr_app:", "lib")):
                del sys.modules[module]
    bundle = base / "bundle"
    zipfile.ZipFile(built.path).extractall(bundle)
    provided = provided_dir(base)
    log = base / "records.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(bundle),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "QR_PROJECT": name,
        "QR_STAGE": "production",
        "QR_QUEUE_URL_PREFIX": f"{moto_url}/{ACCOUNT}/{name}-production-",
        "QR_CONNECTIONS_TABLE": "demo-production-connections",
        "QR_WS_ENDPOINT": moto_url,
        "QR_SSM_PATH": "/qr/demo/production/",
        "QR_BASE_URL": "https://api.example.com",
        "QR_TEST_LOG": str(log),
    }
    return Lambda(bundle, provided, env, moto_url, log)


@pytest.fixture(scope="module")
def aws(moto_url: str) -> str:
    """The stage's AWS resources on the moto server, as Terraform would create them."""
    sqs = _client("sqs", moto_url)
    sqs.create_queue(QueueName="demo-production-emails")
    sqs.create_queue(QueueName="demo-production-quits")
    sqs.create_queue(QueueName="bookmarks-production-screenshots")
    sqs.create_queue(
        QueueName="demo-production-orders.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )
    create_connections_table(_client("dynamodb", moto_url), "demo-production-connections")
    _client("ssm", moto_url).put_parameter(
        Name="/qr/demo/production/API_KEY", Value="s3cret", Type="SecureString"
    )
    return moto_url


@pytest.fixture(scope="module")
def function(tmp_path_factory: pytest.TempPathFactory, aws: str) -> Lambda:
    base = tmp_path_factory.mktemp("lambda")
    root = base / "demo"
    for name, text in PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return _deploy(base, root, aws)


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def test_http_events(function: Lambda) -> None:
    get, post, form, multipart, image, blob, settings = function.invoke(
        event("http_get.json"),
        event("http_post_json.json"),
        event("http_post_form.json"),
        event("http_post_multipart.json"),
        event("http_get_binary.json"),
        event("http_put_binary.json"),
        {**event("http_get_binary.json"), "rawPath": "/settings"},
    )
    response = get["ok"]
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    assert json.loads(response["body"]) == {
        "id": "42",
        "tags": ["a", "b"],  # repeated query values kept
        "q": "hello world",
        "session": "abc123",  # the cookies array
        "theme": "dark",
        "custom": "one,two",
        "request_id": "req-0",  # the Lambda request id
    }

    response = post["ok"]
    assert response["statusCode"] == 201
    assert sorted(response["cookies"]) == [
        "first=1; Path=/; SameSite=lax",
        "second=2; Path=/; SameSite=lax",
    ]
    created = json.loads(response["body"])
    assert created["created"] == "Widget"
    # the push went to SQS with the shared encoding
    sqs = _client("sqs", function.moto_url)
    url = function.env["QR_QUEUE_URL_PREFIX"] + "emails"
    (message,) = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert message["MessageId"] == created["job_id"]
    assert json.loads(message["Body"]) == {"to": "a@example.com", "item": "Widget"}
    assert message["MessageAttributes"]["content_type"]["StringValue"] == "application/json"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    assert json.loads(form["ok"]["body"]) == {"name": "Gadget", "tags": ["x", "y"]}
    assert json.loads(multipart["ok"]["body"]) == {
        "name": "holiday",
        "tags": [],
        "photo": {"name": "p.png", "type": "image/png", "size": 15, "head": "89504e47"},
    }

    response = image["ok"]
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "image/png"
    assert base64.b64decode(response["body"]) == bytes(range(256))

    response = blob["ok"]
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == bytes(range(256))[::-1]

    assert json.loads(settings["ok"]["body"]) == {"api_key": "s3cret", "stage": "production"}


def _sqs_event(function: Lambda, queue: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    template = event("sqs_record.json")
    project = function.env["QR_PROJECT"]
    records = []
    for message in messages:
        records.append(
            {
                **template,
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {
                    name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{project}-production-{queue}",
            }
        )
    return {"Records": records}


def _push(function: Lambda, queue: str, body: object, group: str | None = None) -> None:
    extra: dict[str, Any] = {"MessageGroupId": group} if group else {}
    _client("sqs", function.moto_url).send_message(
        QueueUrl=function.env["QR_QUEUE_URL_PREFIX"] + queue,
        MessageBody=json.dumps(body),
        MessageAttributes={
            "content_type": {"DataType": "String", "StringValue": "application/json"}
        },
        **extra,
    )


def _receive(function: Lambda, queue: str, visibility: int = 60) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        _client("sqs", function.moto_url)
        .receive_message(
            QueueUrl=function.env["QR_QUEUE_URL_PREFIX"] + queue,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        .get("Messages", [])
    )
    return messages


def _delete_succeeded(
    function: Lambda, queue: str, messages: list[dict[str, Any]], answer: dict[str, Any]
) -> None:
    """What the event source mapping does with the response: delete every message not failed."""
    failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
    sqs = _client("sqs", function.moto_url)
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(
                QueueUrl=function.env["QR_QUEUE_URL_PREFIX"] + queue,
                ReceiptHandle=message["ReceiptHandle"],
            )


def test_sqs_standard_batch_reports_the_failed_job(function: Lambda) -> None:
    for to in ("a@x", "b@x"):
        _push(function, "emails", {"to": to})
    _push(function, "emails", {"to": "c@x", "fail": True})
    messages = _receive(function, "emails")
    assert len(messages) == 3
    failing = next(m["MessageId"] for m in messages if "fail" in m["Body"])
    (answer,) = function.invoke(_sqs_event(function, "emails", messages))
    assert answer["ok"] == {"batchItemFailures": [{"itemIdentifier": failing}]}
    assert sorted(function.records()) == ["emails a@x attempt=1", "emails b@x attempt=1"]
    _delete_succeeded(function, "emails", messages, answer["ok"])
    # backoff by ChangeMessageVisibility (0 s here): only the failed job is visible again
    again = _receive(function, "emails")
    assert [m["MessageId"] for m in again] == [failing]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_job_calling_sys_exit_fails_its_record_not_the_invocation(function: Lambda) -> None:
    for body in ({"n": 1}, {"exit": True}, {"n": 2}):
        _push(function, "quits", body)
    messages = _receive(function, "quits")
    assert len(messages) == 3
    exiting = next(m["MessageId"] for m in messages if "exit" in m["Body"])
    http_exit = {**event("http_get.json"), "rawPath": "/quit"}
    batch, http = function.invoke(_sqs_event(function, "quits", messages), http_exit)
    assert batch["ok"] == {"batchItemFailures": [{"itemIdentifier": exiting}]}
    assert sorted(function.records()) == ["quits 1", "quits 2"]
    assert "queues/quits.py: the handler called sys.exit(2)" in function.stderr
    assert http["ok"]["statusCode"] == 500
    assert "api/quit.py: the handler called sys.exit(1)" in function.stderr
    _delete_succeeded(function, "quits", messages, batch["ok"])


def test_job_extend_changes_the_message_visibility(function: Lambda) -> None:
    _push(function, "emails", {"to": "long@x", "extend": True})
    _push(function, "emails", {"to": "short@x"})
    messages = _receive(function, "emails", visibility=0)  # visible again at once...
    assert len(messages) == 2
    (answer,) = function.invoke(_sqs_event(function, "emails", messages))
    assert answer["ok"] == {"batchItemFailures": []}
    # ...unless the job extended its lease: job.extend(120) -> ChangeMessageVisibility
    again = _receive(function, "emails")
    assert [json.loads(m["Body"])["to"] for m in again] == ["short@x"]
    _delete_succeeded(function, "emails", again, {"batchItemFailures": []})


def test_sqs_fifo_batch_failure_blocks_only_its_own_group(function: Lambda) -> None:
    pushes = (("one", "g1"), ("bad", "g1"), ("two", "g1"), ("other", "g2"), ("more", "g2"))
    for payload, group in pushes:
        _push(function, "orders.fifo", payload, group)
    messages = _receive(function, "orders.fifo")
    bodies = [json.loads(m["Body"]) for m in messages]
    assert bodies == ["one", "bad", "two", "other", "more"]
    ids = [m["MessageId"] for m in messages]
    (answer,) = function.invoke(_sqs_event(function, "orders.fifo", messages))
    # the failed job and the rest of its group, not run; group g2 runs on
    assert answer["ok"] == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[1:3]]}
    assert function.records() == ["orders g1 one", "orders g2 other", "orders g2 more"]
    _delete_succeeded(function, "orders.fifo", messages, answer["ok"])
    again = _receive(function, "orders.fifo")
    assert [json.loads(m["Body"]) for m in again] == ["bad", "two"]


def test_catch_all_refuses_traversal_segments(function: Lambda) -> None:
    base = event("http_get_binary.json")
    fine, traversal, dots = function.invoke(
        {**base, "rawPath": "/files/docs/a%2Fb.txt"},
        {**base, "rawPath": "/files/..%2f..%2fetc%2fpasswd"},
        {**base, "rawPath": "/files/%2E%2E/secret"},
    )
    assert json.loads(fine["ok"]["body"]) == {"path": ["docs", "a/b.txt"]}
    for outcome in (traversal, dots):
        assert outcome["ok"]["statusCode"] == 400
        assert "bad request path" in json.loads(outcome["ok"]["body"])["error"]


def test_schedule_and_unknown_events(function: Lambda) -> None:
    scheduled, missing, unknown = function.invoke(
        event("schedule.json"),
        {"qr": "schedule", "name": "nope"},
        event("unknown.json"),
    )
    assert scheduled["ok"]["schedule"] == "cleanup"
    assert function.records() == ["schedule cleanup"]
    assert missing["ok"] == {"error": "no schedule named 'nope'"}
    assert unknown["ok"] == {"error": "unrecognised event"}


def test_websocket_events(function: Lambda) -> None:
    refused = event("ws_connect.json")
    refused["queryStringParameters"] = {"token": "wrong"}
    refused["multiValueQueryStringParameters"] = {"token": ["wrong"]}
    refused["requestContext"] = {**refused["requestContext"], "connectionId": "refused="}
    ping = event("ws_message.json")
    ping["body"] = json.dumps({"action": "ping", "n": 3})
    connect, refuse, message, action, disconnect = function.invoke(
        event("ws_connect.json"),
        refused,
        event("ws_message.json"),
        ping,
        event("ws_disconnect.json"),
    )
    assert connect["ok"] == {"statusCode": 200}
    assert refuse["ok"]["statusCode"] == 401
    assert json.loads(refuse["ok"]["body"]) == {"error": "bad token"}
    assert message["ok"] == {"statusCode": 200}
    assert disconnect["ok"] == {"statusCode": 200}
    # the handler's return value went back through the management API
    connections = get_backend("apigatewaymanagementapi")[ACCOUNT][REGION].connections
    sent = next(c.data for key, c in connections.items() if key.startswith("LmXzXfQ2IAMCJ8g"))
    assert action["ok"] == {"statusCode": 200}
    echo, pong = sent.decode().replace("}{", "}\n{").splitlines()
    assert json.loads(echo) == {"echo": {"text": "hello"}}
    assert json.loads(pong) == {"pong": 3, "action": "ping"}  # socket/ping.py
    # connected, then forgotten on $disconnect
    items = _client("dynamodb", function.moto_url).scan(TableName="demo-production-connections")
    assert items["Items"] == []


def test_the_scaffold_answers_every_kind_of_event(
    tmp_path_factory: pytest.TempPathFactory, aws: str
) -> None:
    """``qr init``'s project, built for this machine, answers each sample event."""
    base = tmp_path_factory.mktemp("scaffold")
    root = base / "demo"
    render(root, "default", Answers(name="demo", runtime=LOCAL, architecture="x86_64"))
    scaffold = _deploy(base, root, aws)
    index = {**event("http_get.json"), "rawPath": "/", "rawQueryString": "", "cookies": []}
    item = {**index, "rawPath": "/items/7"}
    delete = json.loads(json.dumps(item))
    delete["requestContext"]["http"]["method"] = "DELETE"
    record = {
        **event("sqs_record.json"),
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-production-emails",
    }
    message = event("ws_message.json")
    message["requestContext"] = {**message["requestContext"], "connectionId": "scaffold1"}
    answers = scaffold.invoke(
        index, item, delete, {"Records": [record]}, message, event("schedule.json")
    )
    got_index, got_item, got_delete, batch, socket_message, scheduled = answers
    assert json.loads(got_index["ok"]["body"]) == {"message": "Hello from qr"}
    assert json.loads(got_item["ok"]["body"]) == {"id": "7", "name": "Item 7"}
    assert got_delete["ok"]["statusCode"] == 204
    assert batch["ok"] == {"batchItemFailures": []}, scaffold.stderr
    assert socket_message["ok"] == {"statusCode": 200}
    connections = get_backend("apigatewaymanagementapi")[ACCOUNT][REGION].connections
    assert json.loads(connections["scaffold1"].data) == {"echo": {"text": "hello"}}
    assert scheduled["ok"]["schedule"] == "cleanup"


def test_the_bookmarks_example_end_to_end(
    tmp_path_factory: pytest.TempPathFactory, aws: str
) -> None:
    """examples/bookmarks from its bundle: sign in, add a bookmark, the queue job, a socket, the digest."""
    base = tmp_path_factory.mktemp("bookmarks")
    root = base / "bookmarks"
    example = Path(__file__).resolve().parents[2] / "examples" / "bookmarks"
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".qr", "__pycache__"))
    config = (root / "qr.yaml").read_text()
    config = config.replace("runtime: python3.12", f"runtime: {LOCAL}")
    (root / "qr.yaml").write_text(config.replace("architecture: arm64", "architecture: x86_64"))
    bookmarks = _deploy(base, root, aws, name="bookmarks")
    bookmarks.env["BOOKMARKS_DB"] = str(base / "tmp" / "bookmarks.sqlite3")  # Lambda: under /tmp

    def http(method: str, path: str, body: str = "", **headers: str) -> dict[str, Any]:
        request: dict[str, Any] = json.loads(json.dumps(event("http_post_json.json")))
        request["requestContext"]["http"]["method"] = method
        request["rawPath"] = request["requestContext"]["http"]["path"] = path
        request["headers"] = {"host": "api.example.com", **headers}
        request["body"] = body
        return request

    (token,) = bookmarks.invoke(
        http("POST", "/tokens", '{"user": "alice"}', **{"content-type": "application/json"})
    )
    bearer = "Bearer " + json.loads(token["ok"]["body"])["token"]
    form = "title=Example&url=https%3A%2F%2Fexample.com"
    connect = {**event("ws_connect.json")}
    connect["requestContext"] = {**connect["requestContext"], "connectionId": "alice1"}
    sign_in = json.loads(json.dumps(connect))
    sign_in["requestContext"]["eventType"] = "MESSAGE"
    sign_in["body"] = json.dumps({"token": bearer.removeprefix("Bearer ")})
    added, listed, _, signed_in = bookmarks.invoke(
        http(
            "POST",
            "/bookmarks",
            form,
            authorization=bearer,
            **{"content-type": "application/x-www-form-urlencoded"},
        ),
        http("GET", "/bookmarks", authorization=bearer),
        connect,
        sign_in,
    )
    assert added["ok"]["statusCode"] == 303, bookmarks.stderr
    assert added["ok"]["headers"]["location"].startswith("https://api.example.com/bookmarks/")
    (bookmark,) = json.loads(listed["ok"]["body"])
    assert bookmark["title"] == "Example" and bookmark["screenshot"] is None
    assert signed_in["ok"] == {"statusCode": 200}
    connections = get_backend("apigatewaymanagementapi")[ACCOUNT][REGION].connections
    assert json.loads(connections["alice1"].data) == {"authenticated": "alice"}
    connections["alice1"].data = b""

    messages = _receive(bookmarks, "screenshots")  # pushed by POST /bookmarks, with alice's id
    assert [json.loads(m["Body"]) for m in messages] == [{"id": bookmark["id"]}]
    assert messages[0]["MessageAttributes"]["user_id"]["StringValue"] == "alice"
    batch, listed, digest = bookmarks.invoke(
        _sqs_event(bookmarks, "screenshots", messages),
        http("GET", "/bookmarks", authorization=bearer),
        {"qr": "schedule", "name": "daily_digest"},
    )
    assert batch["ok"] == {"batchItemFailures": []}, bookmarks.stderr
    (bookmark,) = json.loads(listed["ok"]["body"])
    assert bookmark["screenshot"].startswith("data:image/svg+xml;base64,")
    assert digest["ok"]["result"] == {"users": 1, "delivered": 1}
    sent = connections["alice1"].data.decode()
    assert '{"update":"bookmark"' in sent.replace(" ", "")
    assert '"added_today":1' in sent.replace(" ", "")


def _log_lines(function: Lambda) -> list[dict[str, Any]]:
    return [json.loads(line) for line in function.stderr.splitlines() if line.startswith("{")]


def test_a_body_marked_base64_that_is_not_is_a_logged_400(function: Lambda) -> None:
    """The AWS documentation's own sample (``"body": "Hello world!"``, ``isBase64Encoded``)."""
    sample = event("aws-docs-apigateway-v2.json")
    valid = json.loads(json.dumps(event("powertools-apiGatewayProxyV2Event.json")))
    valid["headers"]["content-type"] = "application/json"
    valid["body"] = base64.b64encode(b'{"n": 1}').decode()
    valid["isBase64Encoded"] = True
    spaced = {**valid, "body": valid["body"][:4] + " " + valid["body"][4:]}  # lenient: dropped
    bad, good, lenient = function.invoke(sample, valid, spaced)
    response = bad["ok"]
    assert response["statusCode"] == 400
    assert response["headers"]["content-type"] == "application/json"
    error = json.loads(response["body"])["error"]
    assert error.startswith("Bad Request: the event's body is marked isBase64Encoded")
    assert "not valid base64" in error
    assert json.loads(good["ok"]["body"]) == {"body": {"n": 1}, "length": "8"}
    assert lenient["ok"]["statusCode"] == 400  # strict: base64.b64decode(validate=True)
    lines = [line for line in _log_lines(function) if line.get("request_id") == "req-0"]
    warning = next(line for line in lines if line["level"] == "WARNING")
    assert warning["logger"] == "qr.http.error"
    assert warning["message"].startswith(
        "GET /nodejs-apig-function-1G3XMPLZXVXYI: 400 Bad Request: the event's body is marked"
    )
    access = next(line for line in lines if line["logger"] == "qr.http")
    assert access["message"].startswith("GET /nodejs-apig-function-1G3XMPLZXVXYI 400 ")


def test_accepts_is_enforced_on_events_without_content_length(function: Lambda) -> None:
    """aws-powertools' HTTP API sample POSTs a JSON body with no content-length (and no type)."""
    sample = event("powertools-apiGatewayProxyV2Event.json")
    assert "content-length" not in sample["headers"]
    size = str(len(sample["body"].encode()))

    def typed(content_type: str, **extra: str) -> dict[str, Any]:
        changed: dict[str, Any] = json.loads(json.dumps(sample))
        changed["headers"].update({"content-type": content_type, **extra})
        return changed

    untyped, text, lying, json_ok = function.invoke(
        sample,
        typed("text/plain"),
        typed("text/plain", **{"content-length": "0", "transfer-encoding": "chunked"}),
        typed("application/json", **{"content-length": "3"}),
    )
    assert untyped["ok"]["statusCode"] == 415
    assert json.loads(untyped["ok"]["body"]) == {
        "error": "Unsupported Media Type (none); this route accepts application/json"
    }
    assert text["ok"]["statusCode"] == 415
    assert "text/plain" in json.loads(text["ok"]["body"])["error"]
    assert lying["ok"]["statusCode"] == 415  # the body decides, not the client's header
    assert json_ok["ok"]["statusCode"] == 200
    assert json.loads(json_ok["ok"]["body"]) == {
        "body": {"message": "hello world", "username": "tom"},
        "length": size,  # from the body, not the event's header
    }


def test_header_values_outside_latin_1_reach_the_handler_as_sent(function: Lambda) -> None:
    """API Gateway delivers ``x-name: 日本`` as the JSON string; the handler reads "日本"."""
    request = {**event("http_get.json"), "rawPath": "/whoami"}
    request["headers"] = {**request["headers"], "x-name": "日本", "x-other": "café"}
    request["cookies"] = ["name=José"]
    (answer,) = function.invoke(request)
    assert json.loads(answer["ok"]["body"]) == {
        "name": "日本",
        "request": "日本",
        "cookie": "José",
        "raw": ["日本".encode().hex()],  # the bytes a client sends to qr dev
    }


def test_a_websocket_message_marked_base64_that_is_not_is_refused_and_logged(
    function: Lambda,
) -> None:
    message = event("ws_message.json")
    message["body"], message["isBase64Encoded"] = "Hello world!", True
    (answer,) = function.invoke(message)
    assert answer["ok"] == {"statusCode": 400}
    (line,) = [line for line in _log_lines(function) if line["level"] == "ERROR"]
    assert "marked isBase64Encoded but not valid base64" in line["message"]
    assert line["request_id"] == message["requestContext"]["requestId"]
