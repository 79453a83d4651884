"""A sync hook chain and a sync handler in one worker-thread hop, with the semantics of separate
calls: the user reaches the handler, ``on_request``, ``on_response`` and ``on_error``; hook
errors; timeouts (a request that times out in ``authenticate`` never reaches its handler);
bodies read after the hooks; async hooks mixed with sync handlers and the other way round."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qr.runtime import _loader
from qr.runtime.http import create_app
from qr.runtime.manifest import scan
from qr.runtime.testing import Client
from tests import asgi
from tests.conftest import MakeProject

HOOKS = """
import threading

from qr.runtime import HTTPError
from lib.tenancy import tenant

calls = []

def authenticate(bearer_token):
    calls.append(("authenticate", threading.get_ident()))
    if bearer_token is None:
        return None
    if bearer_token == "bad":
        raise HTTPError(401, "bad token")
    tenant.set("t-" + bearer_token)
    return {"id": bearer_token}

def on_request(request, user):
    calls.append(("on_request", threading.get_ident()))
    if request.query_params.get("early"):
        return {"early": user["id"] if user else None}

def on_response(response, user):
    response.headers["x-user"] = user["id"] if user else "-"

def on_error(error, user):
    return {"failed": type(error).__name__, "user": user["id"] if user else None}
"""


def _module(root: Path, file: str) -> Any:
    return sys.modules[_loader.module_name(root, file)]


@pytest.fixture
def client(make_project: MakeProject) -> Iterator[Client]:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "lib/__init__.py": "",
            "lib/tenancy.py": "import contextvars\ntenant = contextvars.ContextVar('tenant')\n",
            "api/_middleware.py": HOOKS,
            "api/me.py": """
                import threading
                from qr.runtime import context
                from lib.tenancy import tenant

                def get(user):
                    now = context.current()
                    return {
                        "user": user,
                        "context_user": now.user_id if now else None,
                        "tenant": tenant.get(None),
                        "thread": threading.get_ident(),
                    }
            """,
            "api/crash.py": "def get(user):\n    raise KeyError(user['id'])\n",
            "api/echo.py": "def post(body, user):\n    return {'body': body, 'user': user['id']}\n",
            "api/mixed/_middleware.py": (
                "async def authenticate(bearer_token):\n"
                "    return {'id': 'async-' + str(bearer_token)}\n"
                "on_request = None\n"
            ),
            "api/mixed/sync.py": "def get(user):\n    return {'user': user['id']}\n",
            "api/mixed_handler.py": "async def get(user):\n    return {'user': user['id']}\n",
        }
    )
    with Client(root) as client:
        yield client


def test_sync_authenticate_and_sync_handler_share_one_worker_hop(client: Client) -> None:
    # One hop: what authenticate puts in the context (a ContextVar) is there in the handler,
    # on the same thread, as in any sync framework. Two hops gave each its own context copy.
    response = client.get("/me", headers={"authorization": "Bearer alice"})
    assert response.status_code == 200
    data = response.json()
    assert data["user"] == {"id": "alice"}
    assert data["context_user"] == "alice"
    assert data["tenant"] == "t-alice"
    hooks = _module(client.manifest.root, "api/_middleware.py")
    threads = {ident for _, ident in hooks.calls[-2:]}
    assert threads == {data["thread"]}


def test_user_reaches_on_response_and_on_error(client: Client) -> None:
    response = client.get("/me", headers={"authorization": "Bearer bob"})
    assert response.headers["x-user"] == "bob"
    crashed = client.get("/crash", headers={"authorization": "Bearer bob"})
    assert crashed.status_code == 200
    assert crashed.json() == {"failed": "KeyError", "user": "bob"}
    assert crashed.headers["x-user"] == "bob"


def test_http_error_from_sync_authenticate_still_passes_on_response(client: Client) -> None:
    response = client.get("/me", headers={"authorization": "Bearer bad"})
    assert (response.status_code, response.json()) == (401, {"error": "bad token"})
    assert response.headers["x-user"] == "-"


def test_on_request_answers_early_from_the_same_hop(client: Client) -> None:
    response = client.get("/me?early=1", headers={"authorization": "Bearer carol"})
    assert response.json() == {"early": "carol"}
    assert response.headers["x-user"] == "carol"


def test_body_is_read_after_the_hooks(client: Client) -> None:
    ok = client.post("/echo", json={"a": 1}, headers={"authorization": "Bearer dan"})
    assert ok.json() == {"body": {"a": 1}, "user": "dan"}
    # Refused by authenticate: the (invalid) body is never parsed, so 401, not 400.
    refused = client.post(
        "/echo",
        content=b"{not json",
        headers={"authorization": "Bearer bad", "content-type": "application/json"},
    )
    assert refused.status_code == 401


def test_async_hooks_with_sync_handlers_and_the_other_way_round(client: Client) -> None:
    assert client.get("/mixed/sync", headers={"authorization": "Bearer x"}).json() == {
        "user": "async-x"
    }
    assert client.get("/mixed_handler", headers={"authorization": "Bearer y"}).json() == {
        "user": "y"
    }


def test_timeout_in_sync_authenticate_is_504_and_the_handler_never_runs(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/_middleware.py": """
                import threading
                release = threading.Event()
                returned = threading.Event()
                def authenticate():
                    release.wait(30)
                    returned.set()
                    return {"id": "late"}
            """,
            "api/slow.py": """
                import threading
                config = {"timeout": 0.1}
                called = threading.Event()
                def get():
                    called.set()
                    return {}
            """,
        }
    )
    with Client(root) as client:
        response = client.get("/slow")
        assert response.status_code == 504
        hooks, route = _module(root, "api/_middleware.py"), _module(root, "api/slow.py")
        hooks.release.set()  # the abandoned worker goes on: it must stop before the handler
        assert hooks.returned.wait(30)
        assert not route.called.wait(0.5)


def test_a_request_past_its_platform_deadline_never_authenticates(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/_middleware.py": """
                calls = []
                def authenticate():
                    calls.append(1)
            """,
            "api/index.py": "def get():\n    return {}\n",
        }
    )
    app = create_app(scan(root))
    sent, _ = asgi.call(app, asgi.http_scope("/", state={"deadline": time.monotonic() - 1}))
    assert sent[0]["status"] == 504
    assert _module(root, "api/_middleware.py").calls == []
