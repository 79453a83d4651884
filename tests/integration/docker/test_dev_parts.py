"""The ``--docker`` parts of the dev server against real containers running a plain handler.

The handler (below) stands in for the Lambda entry point: it answers each AWS event shape and
calls back into the platform through boto3 - SQS ``SendMessage`` and the API Gateway management
API - at the endpoints ``DockerFunction`` hands it, exactly as the production adapters do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from qr.cli.docker.dev import DockerHttpApp, DockerSocketDispatch, DockerWorker, run_schedule
from qr.cli.docker.function import DockerFunction, DockerSettings
from qr.runtime.local.connections import LocalRegistry, LocalSockets
from qr.runtime.local.engine import Engine
from qr.runtime.local.websocket import LocalSocketApp
from qr.runtime.local.worker import LocalQueuePort
from qr.runtime.manifest import Manifest, scan
from qr.runtime.ports import OutgoingJob, Platform
from qr.runtime.sockets import SocketDispatch
from tests.conftest import MakeProject
from tests.integration.docker.conftest import BASE_IMAGE, CACHE

pytestmark = pytest.mark.integration

HANDLER = """
import base64, json, os
import boto3

def _http(event):
    path = event["rawPath"]
    if path == "/push":
        sqs = boto3.client("sqs")
        sent = sqs.send_message(
            QueueUrl=os.environ["QR_QUEUE_URL_PREFIX"] + "emails",
            MessageBody=json.dumps({"to": "a@b.c"}),
            MessageAttributes={"content_type": {"DataType": "String", "StringValue": "application/json"}},
        )
        return {"statusCode": 202, "headers": {"x-job-id": sent["MessageId"]}}
    if path == "/boom":
        raise RuntimeError("boom in the handler")
    body = event.get("body")
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).hex()
    return {
        "statusCode": 201,
        "headers": {"x-method": event["requestContext"]["http"]["method"]},
        "cookies": ["seen=1"],
        "body": json.dumps({"path": path, "query": event.get("queryStringParameters"),
                            "body": body, "cookies": event.get("cookies")}),
    }

def handler(event, context):
    print("event for", context.aws_request_id, flush=True)
    if event.get("version") == "2.0":
        return _http(event)
    ctx = event.get("requestContext", {})
    if ctx.get("eventType") == "CONNECT":
        if (event.get("queryStringParameters") or {}).get("deny"):
            return {"statusCode": 403, "body": json.dumps({"error": "not you"})}
        return {"statusCode": 200}
    if ctx.get("eventType") == "MESSAGE":
        api = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["QR_WS_ENDPOINT"])
        text = ctx["routeKey"] + ":" + event["body"]
        api.post_to_connection(ConnectionId=ctx["connectionId"], Data=text.encode())
        return {"statusCode": 200}
    if ctx.get("eventType") == "DISCONNECT":
        return {"statusCode": 200}
    if "Records" in event:
        failed = [r["messageId"] for r in event["Records"] if "fail" in r["body"]]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
    if event.get("qr") == "schedule":
        if event["name"] == "broken":
            raise ValueError("schedule failed")
        return {"ran": event["name"]}
    return {"unknown": event}
"""


@pytest.fixture
def manifest(make_project: MakeProject) -> Manifest:
    root = make_project(
        {
            "qr.yaml": "name: demo\nruntime: python3.11\n",
            "queues/emails.py": "config = {'max_attempts': 2}\ndef handler(payload): pass\n",
            "socket/index.py": "def handler(data): pass\n",
            "socket/ping.py": "def handler(data): pass\n",
            "schedules/nightly.py": "schedule = 'daily'\ndef handler(job): pass\n",
        }
    )
    return scan(root)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    engine = Engine(tmp_path / "queues.db")
    yield Platform("local", LocalQueuePort(engine), LocalSockets(), LocalRegistry())
    engine.close()


@pytest.fixture
def function(
    docker_client: Any, manifest: Manifest, platform: Platform, tmp_path: Path
) -> Iterator[DockerFunction]:
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text(textwrap.dedent(HANDLER))
    settings = DockerSettings(base_image=BASE_IMAGE, network="host", concurrency=2)
    started = DockerFunction(
        manifest,
        platform,
        settings,
        client=docker_client,
        package=lambda manifest, work_dir: task,
        image_cache=CACHE,
        handler="app.handler",
    )
    started.start()
    yield started
    started.close()


def _client(function: DockerFunction) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=DockerHttpApp(function))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def test_http_requests_become_payload_2_events(function: DockerFunction) -> None:
    asyncio.run(_http(function))


async def _http(function: DockerFunction) -> None:
    async with _client(function) as client:
        response = await client.post(
            "/items?a=1&a=2", content=b"\x00\xff", headers={"cookie": "k=v; x=y"}
        )
        assert response.status_code == 201
        assert response.headers["x-method"] == "POST"
        assert response.headers["set-cookie"] == "seen=1"
        assert response.json() == {
            "path": "/items",
            "query": {"a": "1,2"},
            "body": "00ff",
            "cookies": ["k=v", "x=y"],
        }
        failed = await client.get("/boom")
        assert failed.status_code == 502
        assert "boom in the handler" in failed.json()["error"]


def test_queue_push_from_the_container_and_batch_failures(
    function: DockerFunction, manifest: Manifest, platform: Platform
) -> None:
    asyncio.run(_queues(function, manifest, platform))


async def _queues(function: DockerFunction, manifest: Manifest, platform: Platform) -> None:
    async with _client(function) as client:
        pushed = await client.post("/push")
    assert pushed.status_code == 202
    platform.queues.send(OutgoingJob("emails", '"please fail"', "application/json"))
    port = platform.queues
    assert isinstance(port, LocalQueuePort)
    worker = DockerWorker(port.engine, manifest.queues, function)
    function.extend = worker.extend
    outcomes = await worker.drain()
    by_id = {o.job_id: o.outcome for o in outcomes}
    assert by_id[pushed.headers["x-job-id"]] == "ok"
    assert sorted(by_id.values()) == ["ok", "retry"]


def _with_lifespan(app: ASGIApp) -> ASGIApp:
    """``LocalSocketApp`` serves WebSocket scopes only (DevApp answers lifespan in the server)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    return wrapped


def test_websocket_events_and_sends_through_the_management_api(
    function: DockerFunction, platform: Platform
) -> None:
    sockets = platform.sockets
    assert isinstance(sockets, LocalSockets)
    dispatch = cast(SocketDispatch, DockerSocketDispatch(function))
    client = TestClient(_with_lifespan(LocalSocketApp(dispatch, sockets)))
    with client.websocket_connect("/") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "$default:hello"
        ws.send_text(json.dumps({"action": "ping"}))
        assert ws.receive_text() == 'ping:{"action": "ping"}'
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/?deny=1"):
        pass
    assert refused.value.status_code == 403
    assert refused.value.json() == {"error": "not you"}


def test_schedules_fire_in_the_container(function: DockerFunction, manifest: Manifest) -> None:
    nightly = manifest.schedule("nightly")
    assert nightly is not None
    result = asyncio.run(run_schedule(function, nightly, "job-1", datetime.now(UTC)))
    assert result == {"ran": "nightly"}
    broken = dataclasses.replace(nightly, name="broken")
    with pytest.raises(RuntimeError, match="schedule failed"):
        asyncio.run(run_schedule(function, broken, "job-2", datetime.now(UTC)))
