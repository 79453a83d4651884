"""The bookmarks example's own tests: run them with `pytest` in this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnect

from qr.runtime.testing import Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    env = {"BOOKMARKS_DB": str(tmp_path / "bookmarks.sqlite3"), "BOOKMARKS_SECRET": "test"}
    with Client(ROOT, env=env) as client:
        yield client


def sign_in(client: Client, user: str) -> dict[str, str]:
    token = client.post("/tokens", json={"user": user}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def add(client: Client, auth: dict[str, str], title: str = "Example") -> str:
    response = client.post(
        "/bookmarks", headers=auth, data={"title": title, "url": "https://example.com/page"}
    )
    assert response.status_code == 303
    location: str = response.headers["location"]
    return location.rsplit("/", 1)[1]


def test_index_is_public_and_lists_commands(client: Client) -> None:
    body = client.get("/").json()
    assert body["name"] == "bookmarks"
    assert any("curl" in line for line in body["try"])


def test_bookmarks_need_a_valid_token(client: Client) -> None:
    assert client.get("/bookmarks").status_code == 401
    forged = {"Authorization": "Bearer alice.0000"}
    assert client.get("/bookmarks", headers=forged).status_code == 403


def test_crud(client: Client) -> None:
    alice, bob = sign_in(client, "alice"), sign_in(client, "bob")
    bookmark_id = add(client, alice, "First")
    assert client.get(f"/bookmarks/{bookmark_id}", headers=alice).json()["title"] == "First"
    assert [b["id"] for b in client.get("/bookmarks", headers=alice).json()] == [bookmark_id]
    assert client.get("/bookmarks", headers=bob).json() == []
    assert client.get(f"/bookmarks/{bookmark_id}", headers=bob).status_code == 404
    renamed = client.put(f"/bookmarks/{bookmark_id}", headers=alice, json={"title": "Renamed"})
    assert renamed.json()["title"] == "Renamed"
    assert client.delete(f"/bookmarks/{bookmark_id}", headers=alice).status_code == 204
    assert client.get(f"/bookmarks/{bookmark_id}", headers=alice).status_code == 404


def test_invalid_bookmark_is_422(client: Client) -> None:
    alice = sign_in(client, "alice")
    response = client.post("/bookmarks", headers=alice, json={"title": "x", "url": "ftp://x"})
    assert response.status_code == 422
    assert client.post("/bookmarks", headers=alice, json={"url": "https://x"}).status_code == 422


def test_screenshot_job_notifies_the_user_over_websocket(client: Client) -> None:
    alice = sign_in(client, "alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    with client.websocket("/") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json() == {"authenticated": "alice"}
        bookmark_id = add(client, alice)
        outcomes = client.run_queue("screenshots")
        assert [o.outcome for o in outcomes] == ["ok"]
        assert ws.receive_json() == {"update": "bookmark", "id": bookmark_id}
    bookmark = client.get(f"/bookmarks/{bookmark_id}", headers=alice).json()
    assert bookmark["screenshot"].startswith("data:image/svg+xml;base64,")


def test_screenshot_progress_and_result_through_the_status_route(client: Client) -> None:
    alice, bob = sign_in(client, "alice"), sign_in(client, "bob")
    response = client.post(
        "/bookmarks", headers=alice, data={"title": "Example", "url": "https://example.com/a"}
    )
    status_url = f"/_jobs/{response.headers['x-job-id']}"
    assert client.get(status_url, headers=alice).json()["status"] == "queued"
    assert client.get(status_url, headers=bob).status_code == 403  # not bob's job
    client.run_queue("screenshots")
    state = client.get(status_url, headers=alice).json()
    bookmark_id = response.headers["location"].rsplit("/", 1)[1]
    assert state["status"] == "succeeded"
    assert state["result"] == {"id": bookmark_id, "url": f"/bookmarks/{bookmark_id}"}
    assert (state["progress"], state["progress_message"]) == (1.0, "done")


def test_profile_updates_apply_in_order(client: Client) -> None:
    alice = sign_in(client, "alice")
    for name in ("Alice", "Alice Smith"):
        assert client.put("/profile", headers=alice, json={"name": name}).status_code == 202
    outcomes = client.run_queue("update_profile.fifo")
    assert [o.outcome for o in outcomes] == ["ok", "ok"]
    profile = client.get("/profile", headers=alice).json()
    assert (profile["name"], profile["updates"]) == ("Alice Smith", 2)


def test_daily_digest_tells_online_users(client: Client) -> None:
    alice = sign_in(client, "alice")
    add(client, alice)
    add(client, alice)
    with client.websocket("/") as ws:
        ws.send_json({"token": alice["Authorization"].removeprefix("Bearer ")})
        assert ws.receive_json() == {"authenticated": "alice"}
        assert client.run_schedule("daily_digest") == {"users": 1, "delivered": 1}
        assert ws.receive_json() == {"digest": {"added_today": 2}}


def test_websocket_sign_in(client: Client) -> None:
    with client.websocket("/") as ws:
        ws.send_text("ping")
        assert "sign in first" in ws.receive_json()["error"]
        ws.send_json({"token": "alice.forged"})
        assert ws.receive_json() == {"error": "invalid token", "status": 401}
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 4401
