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
    assert [r.path for r in manifest.routes] == ["/", "/items/[id]"]
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


def test_item_description():
    from lib.items import describe

    assert describe("7") == {"id": "7", "name": "Item 7"}
