"""This project's tests. Run them with: pytest"""

from pathlib import Path

from qr.runtime import scan

ROOT = Path(__file__).resolve().parent.parent


def test_handlers_are_found():
    manifest = scan(ROOT)
    assert [r.path for r in manifest.routes] == ["/", "/items/[id]"]
    assert [q.name for q in manifest.queues] == ["emails"]
    assert [s.name for s in manifest.schedules] == ["cleanup"]


def test_item_description():
    from lib.items import describe

    assert describe("7") == {"id": "7", "name": "Item 7"}
