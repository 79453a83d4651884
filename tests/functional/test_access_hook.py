"""The platform's access-line hook replaces the per-request log record (qr dev uses it)."""

from __future__ import annotations

import logging

import pytest

from qr.runtime.http import create_app
from qr.runtime.manifest import scan
from tests.asgi import call, http_scope
from tests.conftest import MakeProject


def test_on_access_gets_every_request_instead_of_a_log_record(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_project({"api/index.py": "def get():\n    return {'ok': True}\n"})
    lines: list[tuple[str, str, int, float, str, str | None]] = []
    app = create_app(scan(root), on_access=lambda *line: lines.append(line))
    with caplog.at_level(logging.INFO, logger="qr.http"):
        call(app, http_scope("/"))
        call(app, http_scope("/", method="POST"))
        call(app, http_scope("/missing"))
    assert [(m, p, s) for m, p, s, _, _, _ in lines] == [
        ("GET", "/", 200),
        ("POST", "/", 405),
        ("GET", "/missing", 404),
    ]
    assert all(duration >= 0 and len(request_id) == 32 for *_, duration, request_id, _ in lines)
    assert not [r for r in caplog.records if r.name == "qr.http"]


def test_without_hook_the_access_line_is_logged(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_project({"api/index.py": "def get():\n    return {'ok': True}\n"})
    with caplog.at_level(logging.INFO, logger="qr.http"):
        call(create_app(scan(root)), http_scope("/"))
    (record,) = [r for r in caplog.records if r.name == "qr.http"]
    assert record.getMessage().startswith("GET / 200 ")


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_the_access_hook_gets_the_authenticated_user(make_project: MakeProject, kind: str) -> None:
    """The dashboard's live feed shows who made each request (the hook runs after the request's
    context has ended, so the app hands the user over)."""
    root = make_project(
        {
            "api/_middleware.py": f"""
                {kind} authenticate(bearer_token):
                    return {{"id": bearer_token}} if bearer_token else None
            """,
            "api/me.py": "def get(user):\n    return user or {}\n",
        }
    )
    lines: list[tuple[str, str, int, float, str, str | None]] = []
    app = create_app(scan(root), on_access=lambda *line: lines.append(line))
    call(app, http_scope("/me", headers=[(b"authorization", b"Bearer alice")]))
    call(app, http_scope("/me"))
    assert [(status, user) for _, _, status, _, _, user in lines] == [(200, "alice"), (200, None)]
