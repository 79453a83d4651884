"""This project's tests. Run them with: pytest"""

from pathlib import Path

import pytest

from qr.runtime import scan
from qr.runtime.testing import Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client():
    with Client(ROOT, env={"GREETING": "Hi"}) as client:
        yield client


def test_handlers_are_found():
    manifest = scan(ROOT)
    assert [r.path for r in manifest.routes] == ["/", "/_jobs/[job_id]", "/emails", "/items/[id]"]
    assert [q.name for q in manifest.queues] == ["emails"]
    assert [s.name for s in manifest.schedules] == ["cleanup"]


def test_index(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"message": "Hi from qr"}


def test_item_by_id(client):
    response = client.get("/items/7")
    assert response.status_code == 200
    assert response.json() == {"id": "7", "name": "Item 7"}


def test_delete_item_returns_no_content(client):
    assert client.delete("/items/7").status_code == 204


def test_unknown_route_is_404(client):
    assert client.get("/nothing-here").status_code == 404


def test_email_is_queued_then_sent(client):
    response = client.post("/emails", json={"to": "ada@example.com"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    (outcome,) = client.run_queue("emails")
    assert (outcome.job_id, outcome.outcome) == (job_id, "ok")
    assert outcome.result == {"sent": True}


def test_email_job_can_be_followed(client):
    response = client.post("/emails", json={"to": "ada@example.com"})
    status_url = response.headers["location"]
    assert client.get(status_url).json()["status"] == "queued"
    client.run_queue("emails")
    state = client.get(status_url).json()
    assert (state["status"], state["result"]) == ("succeeded", {"sent": True})
    assert (state["progress"], state["progress_message"]) == (1.0, "sent")
    assert client.get("/_jobs/not-a-job").status_code == 404


def test_email_needs_an_address(client):
    assert client.post("/emails", json={}).status_code == 400


def test_item_description():
    from lib.items import describe

    assert describe("7") == {"id": "7", "name": "Item 7"}
