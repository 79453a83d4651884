"""The qr dev dashboard through an in-process client: the real DevServer app (uvicorn aside),
its SQLite engine, worker and scheduler running under Starlette's TestClient lifespan."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from qr.cli.console import Output
from qr.cli.dev.dashboard.feed import Feed
from qr.cli.dev.server import DevOptions, DevServer
from qr.runtime.manifest import scan
from qr.runtime.ports import OutgoingJob
from tests.conftest import MakeProject

PORT = 8123
BASE = f"http://127.0.0.1:{PORT}"
PAGES = ("", "queues", "jobs", "schedules", "sockets", "logs")

PROJECT = {
    "qr.yaml": "name: dash\n",
    "api/index.py": """
        authenticate = None

        def get():
            return {"ok": True}
    """,
    "queues/work.py": """
        from qr.runtime import queues

        config = {"max_attempts": 1}

        def handler(payload, job):
            if payload.get("fail"):
                raise RuntimeError("asked to fail: " + str(payload["fail"]))
            return {"echo": payload}

        queue = queues.self()
    """,
    "queues/typed.py": """
        from dataclasses import dataclass

        @dataclass
        class Order:
            sku: str
            count: int

        def handler(payload: Order):
            return payload.count
    """,
    "schedules/tick.py": """
        schedule = "rate(1 hour)"

        def handler(job):
            return {"ticked": True}
    """,
}


@pytest.fixture
def dev(make_project: MakeProject) -> Iterator[tuple[DevServer, TestClient]]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = DevServer(
        DevOptions(make_project(PROJECT), port=PORT, reload=False), Output(io.StringIO())
    )
    try:
        with TestClient(server.app, base_url=BASE) as client:
            server.listening("127.0.0.1", PORT)
            yield server, client
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _token(page: str) -> str:
    found = re.search(r'<meta name="qr-token" content="([^"]+)">', page)
    assert found is not None
    return found.group(1)


def _wait_status(server: DevServer, job_id: str, *statuses: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = server.platform.jobs.get(job_id) if server.platform.jobs else None
        if state is not None and state.status in statuses:
            return state.status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}")


def test_every_page_renders_with_the_token_and_its_assets(
    dev: tuple[DevServer, TestClient],
) -> None:
    server, client = dev
    total = 0
    for page in PAGES:
        response = client.get(f"/_qr/{page}")
        assert response.status_code == 200, (page, response.text[:300])
        assert _token(response.text) == server.guard.token
        total += len(response.content)
    overview = client.get("/_qr/").text
    assert 'data-route="/"' in overview and "queues/work.py" in overview and "tick" in overview
    for asset in ("static/dashboard.js", "static/dashboard.css"):
        response = client.get(f"/_qr/{asset}")
        assert response.status_code == 200
        total += len(response.content)
    assert total < 250_000  # page weight: every page and both assets together
    console = server.out.stream
    assert isinstance(console, io.StringIO)
    assert "dashboard: http://localhost:8123/_qr/" in console.getvalue()


def test_foreign_origin_host_and_missing_token_are_refused(
    dev: tuple[DevServer, TestClient],
) -> None:
    server, client = dev
    assert client.get("/_qr/", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/_qr/jobs", headers={"Host": "evil.example:8123"}).status_code == 403
    # an action without the token (a form posted by another page) changes nothing
    server.engine.push(OutgoingJob("work", json.dumps({"fail": 1}), "application/json", delay=600))
    refused = client.post("/_qr/queues/work/purge")
    assert refused.status_code == 403 and "token" in refused.json()["error"]
    assert server.engine.stats(["work"])[0].delayed == 1
    wrong = client.post("/_qr/queues/work/purge", headers={"X-Qr-Token": "guess"})
    assert wrong.status_code == 403
    same_site_token = {"X-Qr-Token": server.guard.token, "Origin": "http://evil.example"}
    assert client.post("/_qr/queues/work/purge", headers=same_site_token).status_code == 403
    assert server.engine.stats(["work"])[0].delayed == 1


def test_push_run_and_follow_a_job(dev: tuple[DevServer, TestClient]) -> None:
    server, client = dev
    headers = {"X-Qr-Token": server.guard.token}
    pushed = client.post("/_qr/queues/work/push", json={"payload": {"n": 1}}, headers=headers)
    assert pushed.status_code == 200, pushed.text
    job_id = pushed.json()["job_id"]
    assert _wait_status(server, job_id, "succeeded") == "succeeded"
    page = client.get(f"/_qr/jobs/{job_id}").text
    assert 'data-status="succeeded"' in page and "&#34;echo&#34;" in page
    listing = client.get("/_qr/jobs?queue=work&status=succeeded").text
    assert f'data-job-id="{job_id}"' in listing
    assert client.get(f"/_qr/jobs?id={job_id}").text.count("data-job-id=") == 1
    exported = client.get("/_qr/jobs.json?queue=work").json()
    assert [job["job_id"] for job in exported] == [job_id]
    assert exported[0]["result"] == {"echo": {"n": 1}}
    bad = client.post("/_qr/queues/work/push", json={"payload": {}, "delay": 5000}, headers=headers)
    assert bad.status_code == 400 and "900" in bad.json()["error"]
    unknown = client.post("/_qr/queues/nope/push", json={"payload": {}}, headers=headers)
    assert unknown.status_code == 404 and "work" in unknown.json()["error"]
    assert client.get("/_qr/jobs/no-such-job").status_code == 404


def test_failed_job_shows_its_error_then_redrive_and_purge(
    dev: tuple[DevServer, TestClient],
) -> None:
    server, client = dev
    headers = {"X-Qr-Token": server.guard.token}
    job_id = client.post(
        "/_qr/queues/work/push", json={"payload": {"fail": "boom"}}, headers=headers
    ).json()["job_id"]
    assert _wait_status(server, job_id, "dead") == "dead"
    page = client.get(f"/_qr/jobs/{job_id}").text
    assert "RuntimeError: asked to fail: boom" in page
    row = re.search(r'<tr data-queue="work">(.*?)</tr>', client.get("/_qr/queues").text, re.S)
    assert row is not None and '<td class="dead">1</td>' in row.group(1)
    moved = client.post("/_qr/queues/work/redrive", headers=headers).json()
    assert moved == {"queue": "work", "moved": 1}
    server.engine.push(OutgoingJob("work", "{}", "application/json", delay=600))
    purged = client.post("/_qr/queues/work/purge", headers=headers).json()
    assert purged["purged"] >= 1
    assert server.engine.stats(["work"])[0].delayed == 0


def test_cancel_a_delayed_job(dev: tuple[DevServer, TestClient]) -> None:
    server, client = dev
    headers = {"X-Qr-Token": server.guard.token}
    job_id = client.post(
        "/_qr/queues/work/push", json={"payload": {}, "delay": 600}, headers=headers
    ).json()["job_id"]
    assert 'data-status="delayed"' in client.get(f"/_qr/jobs/{job_id}").text
    cancelled = client.post(f"/_qr/jobs/{job_id}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    assert client.post("/_qr/jobs/nope/cancel", headers=headers).status_code == 404


def test_run_a_schedule_now_and_see_its_last_run(dev: tuple[DevServer, TestClient]) -> None:
    server, client = dev
    page = client.get("/_qr/schedules").text
    assert "rate(1 hour)" in page and "UTC ·" in page and "none since start" in page
    ran = client.post("/_qr/schedules/tick", headers={"X-Qr-Token": server.guard.token}).json()
    assert ran["ok"] is True
    last = client.get("/_qr/schedules").text
    assert re.search(r'<li class="ok">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ok \(', last), last


def test_send_to_a_user_with_no_connection(dev: tuple[DevServer, TestClient]) -> None:
    server, client = dev
    headers = {"X-Qr-Token": server.guard.token}
    sent = client.post(
        "/_qr/sockets/send", json={"user": "alice", "message": {"hi": 1}}, headers=headers
    )
    assert sent.json() == {"user": "alice", "connections": 0}
    assert client.post("/_qr/sockets/send", json={}, headers=headers).status_code == 400


def test_the_event_stream_carries_requests_and_console_lines(
    dev: tuple[DevServer, TestClient],
) -> None:
    _, client = dev
    assert client.get("/").json() == {"ok": True}
    with client.stream("GET", "/_qr/events?history=50") as stream:
        frames = stream.iter_lines()
        assert next(frames) == "retry: 1000"
        data = next(line for line in frames if line.startswith("data: "))
    events = json.loads(data.removeprefix("data: "))["events"]
    requests = [e for e in events if e["kind"] == "request"]
    assert requests and requests[-1]["path"] == "/" and requests[-1]["status"] == 200
    assert any(e["kind"] == "log" and "GET / 200" in e["message"] for e in events)


def test_the_feed_drops_and_counts_what_a_slow_reader_missed() -> None:
    feed = Feed(size=10)
    for number in range(25):
        feed.publish("log", message=str(number))
    events, dropped, position = feed.since(0)
    assert [e["message"] for e in events] == [str(n) for n in range(15, 25)]
    assert dropped == 15 and position == 25
    feed.publish("log", message="25")
    events, dropped, position = feed.since(position, limit=5)
    assert [e["message"] for e in events] == ["25"] and dropped == 0 and position == 26


def test_jobs_page_is_paginated(dev: tuple[DevServer, TestClient]) -> None:
    server, client = dev
    for _ in range(120):
        server.engine.push(OutgoingJob("work", "{}", "application/json", delay=600))
    first = client.get("/_qr/jobs?queue=work").text
    assert first.count("data-job-id=") == 50 and 'id="next-page"' in first
    third = client.get("/_qr/jobs?queue=work&page=3").text
    assert third.count("data-job-id=") == 20 and 'id="next-page"' not in third


def test_no_dashboard_on_a_network_host_unless_asked(make_project: MakeProject) -> None:
    root = make_project(PROJECT)
    assert not DevOptions(root, host="0.0.0.0").dashboard_on
    assert DevOptions(root, host="0.0.0.0", dashboard=True).dashboard_on
    assert DevOptions(root).dashboard_on
    assert not DevOptions(root, dashboard=False).dashboard_on


def test_network_host_without_dashboard_answers_404_with_the_flag(
    make_project: MakeProject,
) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    server = DevServer(
        DevOptions(make_project(PROJECT), host="0.0.0.0", port=PORT, reload=False),
        Output(io.StringIO()),
    )
    try:
        with TestClient(server.app, base_url=BASE) as client:
            server.listening("0.0.0.0", PORT)
            response = client.get("/_qr/")
            assert response.status_code == 404 and "--dashboard" in response.json()["error"]
            assert client.get("/_qr/static/dashboard.js").status_code == 404
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)


def test_a_route_under_the_reserved_prefix_is_a_load_error(make_project: MakeProject) -> None:
    root = make_project({**PROJECT, "api/_qr/stats.py": "def get():\n    return {}\n"})
    with pytest.raises(Exception) as caught:
        scan(root)
    text = str(caught.value)
    assert "api/_qr/stats.py" in text and "/_qr/ is reserved" in text


def test_job_page_shows_payload_and_attempts_and_retry_replay_promote(
    dev: tuple[DevServer, TestClient],
) -> None:
    server, client = dev
    headers = {"X-Qr-Token": server.guard.token}

    def push(payload: object, delay: float = 0) -> str:
        body = {"payload": payload, "delay": delay}
        job_id: str = client.post("/_qr/queues/work/push", json=body, headers=headers).json()[
            "job_id"
        ]
        return job_id

    dead = push({"fail": "first"})
    assert _wait_status(server, dead, "dead") == "dead"
    page = client.get(f"/_qr/jobs/{dead}").text
    assert "&#34;fail&#34;: &#34;first&#34;" in page  # the payload as pushed
    attempt = re.search(
        r'<li class="attempt" data-attempt="1" data-status="dead">(.*?)</li>', page, re.S
    )
    assert attempt is not None and "RuntimeError: asked to fail: first" in attempt.group(1)
    retried = client.post(f"/_qr/jobs/{dead}/retry", headers=headers).json()
    assert retried["job_id"] == dead and retried["new_job_id"] != dead
    assert _wait_status(server, retried["new_job_id"], "dead") == "dead"
    detail = server.engine.job_detail(retried["new_job_id"])
    assert detail is not None and detail["origin"] == {"kind": "retry", "id": dead}
    assert client.post(f"/_qr/jobs/{dead}/retry", headers=headers).status_code == 409  # gone

    done = push({"n": 5})
    assert _wait_status(server, done, "succeeded") == "succeeded"
    replayed = client.post(f"/_qr/jobs/{done}/replay", headers=headers).json()
    assert _wait_status(server, replayed["new_job_id"], "succeeded") == "succeeded"
    again = server.platform.jobs.get(replayed["new_job_id"]) if server.platform.jobs else None
    assert again is not None and again.result == {"echo": {"n": 5}}
    assert client.post(f"/_qr/jobs/{done}/promote", headers=headers).status_code == 409

    later = push({"n": 6}, delay=600)
    assert client.post(f"/_qr/jobs/{later}/promote", headers=headers).json()["promoted"]
    assert _wait_status(server, later, "succeeded") == "succeeded"
    assert client.post("/_qr/jobs/nope/replay", headers=headers).status_code == 404
    assert client.post("/_qr/jobs/nope/retry", headers=headers).status_code == 404
    trace = client.get(f"/_qr/trace/{done}").text
    assert f'data-job-id="{replayed["new_job_id"]}"' in trace


def test_the_push_box_shows_a_typed_queues_payload_schema(
    dev: tuple[DevServer, TestClient],
) -> None:
    _, client = dev
    page = client.get("/_qr/queues").text
    assert '<details class="schema" data-schema-for="typed">' in page
    assert "&#34;sku&#34;" in page and "&#34;required&#34;" in page
    assert 'data-schema-for="work"' not in page  # an untyped queue has none
    headers = {"x-qr-token": _token(page)}
    bad = client.post("/_qr/queues/typed/push", json={"payload": {"sku": "a"}}, headers=headers)
    assert bad.status_code == 400 and "typed" in bad.json()["error"]
    good = {"payload": {"sku": "a", "count": 2}}
    assert client.post("/_qr/queues/typed/push", json=good, headers=headers).status_code == 200
