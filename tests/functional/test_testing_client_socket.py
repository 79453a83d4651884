"""``qr.runtime.testing.Client``: WebSocket connections and schedule runs in-process."""

from __future__ import annotations

import pytest
from starlette.testclient import WebSocketDenialResponse

from qr.runtime.testing import Client
from tests.conftest import MakeProject

PROJECT = {
    "api/notify.py": """
    from qr.runtime import socket

    def post(body):
        return {"sent": socket.to(body["user"]).send({"note": body["text"]})}
    """,
    "socket/_middleware.py": """
    from qr.runtime import HTTPError

    def on_connect(request):
        if request.headers.get("x-deny"):
            raise HTTPError(401, "no entry")

    def authenticate(data):
        return {"id": data["login"]} if isinstance(data, dict) and "login" in data else None
    """,
    "socket/index.py": """
    def handler(data, user):
        return {"you": user["id"] if user else None, "said": data}
    """,
    "schedules/digest.py": """
    schedule = "daily"

    def handler(job, schedule_name):
        return {"ran": schedule_name, "job": job.job_id}
    """,
}


def test_websocket_and_http_together(make_project: MakeProject) -> None:
    with Client(make_project(PROJECT)) as client, client.websocket("/") as ws:
        ws.send_json("anonymous")
        assert ws.receive_json() == {"you": None, "said": "anonymous"}
        ws.send_json({"login": "ann"})
        ws.send_text("hello")
        assert ws.receive_json() == {"you": "ann", "said": "hello"}
        response = client.post("/notify", json={"user": "ann", "text": "hi"})
        assert response.json() == {"sent": 1}
        assert ws.receive_json() == {"note": "hi"}


def test_websocket_refused_by_on_connect(make_project: MakeProject) -> None:
    with Client(make_project(PROJECT)) as client:
        with (
            pytest.raises(WebSocketDenialResponse) as info,
            client.websocket("/", headers={"x-deny": "1"}),
        ):
            pass
        assert info.value.status_code == 401


def test_run_schedule(make_project: MakeProject) -> None:
    with Client(make_project(PROJECT)) as client:
        result = client.run_schedule("digest")
        assert result["ran"] == "digest"
        assert len(result["job"]) == 32
        with pytest.raises(KeyError, match="schedules: digest"):
            client.run_schedule("nope")
