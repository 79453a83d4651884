"""The HTTP runtime through the in-process client: dispatch, injection, results, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

import pytest

from qr.runtime.testing import Client
from tests import asgi
from tests.conftest import MakeProject

OpenClient = Callable[..., Client]


@pytest.fixture
def open_client(make_project: MakeProject) -> Iterator[OpenClient]:
    clients: list[Client] = []

    def open_(files: Mapping[str, str], **options: object) -> Client:
        root = make_project({"qr.yaml": "name: app\n", **files})
        client = Client(root, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()


def test_method_functions_dispatch(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/things.py": """
                def get(): return {"method": "get"}
                async def post(): return {"method": "post"}
                def put(): return {"method": "put"}
                def patch(): return {"method": "patch"}
                def del_(): return {"method": "delete"}
            """
        }
    )
    for method in ("get", "post", "put", "patch", "delete"):
        response = client.request(method.upper(), "/things")
        assert response.status_code == 200, response.text
        assert response.json() == {"method": method}


def test_single_handler_with_config_methods(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/echo.py": """
                config = {"methods": ["GET", "POST"]}
                def handler(request):
                    return {"method": request.method}
            """
        }
    )
    assert client.get("/echo").json() == {"method": "GET"}
    assert client.post("/echo").json() == {"method": "POST"}
    response = client.put("/echo")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"


def test_no_route_is_404_with_json_error(open_client: OpenClient) -> None:
    client = open_client({"api/index.py": "def get(): return 'home'"})
    response = client.get("/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_method_not_exported_is_405_with_allow(open_client: OpenClient) -> None:
    client = open_client({"api/items.py": "def get(): return []\ndef post(): return {}"})
    response = client.delete("/items")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert "DELETE" in response.json()["error"]


def test_head_on_a_get_route_has_headers_but_no_body(open_client: OpenClient) -> None:
    client = open_client({"api/doc.py": "def get(): return {'a': 'x' * 100}"})
    get = client.get("/doc")
    head = client.head("/doc")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == get.headers["content-length"]


def test_explicit_head_function_wins(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/doc.py": """
                from qr.runtime import Response
                def get(): return "body"
                def head(): return Response(headers={"x-head": "1"})
            """
        }
    )
    assert client.head("/doc").headers["x-head"] == "1"


def test_sync_handlers_run_in_worker_threads_async_on_the_loop(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/sync.py": """
                import threading
                def get(): return {"main": threading.current_thread() is threading.main_thread(), "name": threading.current_thread().name}
            """,
            "api/async.py": """
                import asyncio
                async def get():
                    await asyncio.sleep(0)
                    return {"loop": asyncio.get_running_loop() is not None}
            """,
        }
    )
    sync_thread = client.get("/sync").json()
    assert sync_thread["main"] is False
    assert client.get("/async").json() == {"loop": True}


def test_injection_by_name(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/users/[user_id]/posts/[post_id].py": """
                import time
                def post(user_id, post_id, params, query, headers, cookies, body, user, request_id, deadline, request):
                    return {
                        "user_id": user_id, "post_id": post_id, "params": params,
                        "tags": query.getlist("tag"), "header": headers["x-thing"],
                        "cookie": cookies["session"], "body": body, "user": user,
                        "request_id_ok": len(request_id) == 32,
                        "deadline_ahead": deadline > time.monotonic(),
                        "path": request.url.path,
                    }
            """
        }
    )
    client.cookies.set("session", "abc")
    response = client.post(
        "/users/u1/posts/p2?tag=a&tag=b", json={"x": 1}, headers={"X-Thing": "yes"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": "u1",
        "post_id": "p2",
        "params": {"user_id": "u1", "post_id": "p2"},
        "tags": ["a", "b"],
        "header": "yes",
        "cookie": "abc",
        "body": {"x": 1},
        "user": None,
        "request_id_ok": True,
        "deadline_ahead": True,
        "path": "/users/u1/posts/p2",
    }


def test_catch_all_value_is_a_list_of_segments(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/files/[...path].py": "def get(path): return {'path': path}",
            "api/files/readme.py": "def get(): return 'literal wins'",
        }
    )
    assert client.get("/files/a/b/c.txt").json() == {"path": ["a", "b", "c.txt"]}
    assert client.get("/files/readme").text == "literal wins"
    assert client.get("/files").status_code == 404


def test_catch_all_never_gets_a_traversal_segment(open_client: OpenClient) -> None:
    client = open_client({"api/files/[...path].py": "def get(path): return {'path': path}"})
    assert client.get("/files/a%2Fb").json() == {"path": ["a/b"]}  # an encoded slash is data
    for path in ("/files/..%2f..%2fetc%2fpasswd", "/files/%2e%2e", "/files/a%2F.%2Fb"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "bad request path" in response.json()["error"]


def test_literal_beats_parameter_beats_catch_all(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/[slug].py": "def get(slug): return {'param': slug}",
            "api/about.py": "def get(): return {'literal': True}",
            "api/[...rest].py": "def get(rest): return {'rest': rest}",
        }
    )
    assert client.get("/about").json() == {"literal": True}
    assert client.get("/other").json() == {"param": "other"}
    assert client.get("/a/b").json() == {"rest": ["a", "b"]}


def test_trailing_slash_is_the_same_route(open_client: OpenClient) -> None:
    client = open_client({"api/items/index.py": "def get(): return [1]"})
    assert client.get("/items/").json() == [1]


def test_results_become_responses(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/dict.py": "def get(): return {'a': 1}",
            "api/list.py": "def get(): return [1, 'é']",
            "api/dataclass.py": """
                import dataclasses, datetime, uuid
                @dataclasses.dataclass
                class Item:
                    id: uuid.UUID
                    at: datetime.date
                def get(): return Item(uuid.UUID(int=1), datetime.date(2026, 1, 2))
            """,
            "api/model.py": """
                class Model:
                    def model_dump(self, mode="python"): return {"mode": mode}
                def get(): return Model()
            """,
            "api/text.py": "def get(): return 'hello'",
            "api/bytes.py": "def get(): return b'\\x00\\x01'",
            "api/none.py": "def post(): return None",
            "api/response.py": """
                from qr.runtime import Response
                def get(): return Response("<b>hi</b>", status_code=201, media_type="text/html")
            """,
            "api/redirect.py": """
                from qr.runtime import Response
                def post(): return Response.redirect("/done")
            """,
        }
    )
    assert client.get("/dict").json() == {"a": 1}
    assert client.get("/list").json() == [1, "é"]
    assert client.get("/dataclass").json() == {
        "id": "00000000-0000-0000-0000-000000000001",
        "at": "2026-01-02",
    }
    assert client.get("/model").json() == {"mode": "json"}
    text = client.get("/text")
    assert (text.text, text.headers["content-type"]) == ("hello", "text/plain; charset=utf-8")
    raw = client.get("/bytes")
    assert (raw.content, raw.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")
    none = client.post("/none")
    assert (none.status_code, none.content) == (204, b"")
    html = client.get("/response")
    assert (html.status_code, html.text) == (201, "<b>hi</b>")
    redirect = client.post("/redirect")
    assert (redirect.status_code, redirect.headers["location"]) == (303, "/done")


def test_http_error_ends_the_request(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/teapot.py": """
                from qr.runtime import HTTPError
                def get(): raise HTTPError(418, {"why": "short and stout"}, {"x-kettle": "no"})
            """,
            "api/gone.py": """
                from qr.runtime import HTTPError
                def get(): raise HTTPError(410)
            """,
        }
    )
    response = client.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {"error": {"why": "short and stout"}}
    assert response.headers["x-kettle"] == "no"
    assert client.get("/gone").json() == {"error": "Gone"}


def test_handler_that_raises_is_a_500_with_request_id_and_logged_traceback(
    open_client: OpenClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = open_client({"api/boom.py": "def get():\n    raise ValueError('secret detail')"})
    with caplog.at_level(logging.ERROR, logger="qr.http"):
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "Internal Server Error"
    assert len(body["request_id"]) == 32
    assert "secret detail" not in response.text
    record = next(r for r in caplog.records if r.name == "qr.http.error")
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])
    assert "api/boom.py" in record.getMessage()
    # the server survives
    assert client.get("/boom").status_code == 500


def test_dev_mode_shows_the_traceback(open_client: OpenClient) -> None:
    client = open_client({"api/boom.py": "def get():\n    raise ValueError('visible')"}, dev=True)
    body = client.get("/boom").json()
    assert "ValueError: visible" in body["traceback"]


def test_result_that_is_not_json_is_a_500(open_client: OpenClient) -> None:
    client = open_client({"api/odd.py": "def get(): return {'x': object()}"})
    assert client.get("/odd").status_code == 500


def test_async_handler_past_its_timeout_is_504(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/slow.py": """
                import asyncio
                config = {"timeout": 0.05}
                async def get():
                    await asyncio.sleep(30)
            """
        }
    )
    response = client.get("/slow")
    assert response.status_code == 504
    assert "0.05s" in response.json()["error"]


def test_sync_handler_past_its_timeout_is_504(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/slow.py": """
                import threading
                config = {"timeout": 0.05}
                release = threading.Event()
                def get():
                    release.wait(30)
            """
        }
    )
    import sys

    response = client.get("/slow")
    assert response.status_code == 504
    (route,) = client.manifest.routes
    sys.modules[route.module].release.set()


def test_cache_config_sets_cache_control(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/cached.py": "config = {'cache': 60}\ndef get(): return {}\ndef post(): return {}",
            "api/own.py": """
                from qr.runtime import Response
                config = {'cache': 60}
                def get(): return Response('x', headers={'cache-control': 'private'})
            """,
        }
    )
    assert client.get("/cached").headers["cache-control"] == "max-age=60"
    assert "cache-control" not in client.post("/cached").headers
    assert client.get("/own").headers["cache-control"] == "private"


def test_request_id_comes_from_the_platform_scope(make_project: MakeProject) -> None:
    from qr.runtime.http import create_app
    from qr.runtime.manifest import scan

    root = make_project(
        {"qr.yaml": "name: app\n", "api/id.py": "def get(request_id): return request_id"}
    )
    app = create_app(scan(root))
    sent, _ = asgi.call(app, asgi.http_scope("/id", state={"request_id": "lambda-req-1"}))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"lambda-req-1"


def test_access_line_per_request(open_client: OpenClient, caplog: pytest.LogCaptureFixture) -> None:
    client = open_client({"api/index.py": "def get(): return 'ok'"})
    with caplog.at_level(logging.INFO, logger="qr.http"):
        client.get("/")
        client.get("/missing")
    lines = [r for r in caplog.records if r.name == "qr.http"]
    assert len(lines) == 2
    first = lines[0].getMessage()
    assert first.startswith("GET / 200 ") and first.split()[3].endswith("ms")
    assert lines[0].request_id == first.split()[-1]  # type: ignore[attr-defined]
    assert lines[1].getMessage().startswith("GET /missing 404 ")


def test_log_lines_inside_a_handler_carry_the_request_id(open_client: OpenClient) -> None:
    from qr.runtime.logs import RequestIdFilter

    client = open_client(
        {
            "api/logs.py": """
                import logging
                def get(request_id):
                    logging.getLogger("app").warning("inside")
                    return request_id
            """
        }
    )
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.request_id} {record.getMessage()}")  # type: ignore[attr-defined]

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        request_id = client.get("/logs").text
    finally:
        logger.removeHandler(handler)
    assert seen == [f"{request_id} inside"]


def test_url_self_in_a_route_file(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/bookmarks/[id].py": """
                from qr.runtime import url
                url_for_bookmark = url.self()
                def get(id): return {"self": url_for_bookmark(id=id, page=2), "other": url("/files/[...p]", p=["a", "b"])}
            """
        }
    )
    assert client.get("/bookmarks/5").json() == {
        "self": "http://testserver/bookmarks/5?page=2",
        "other": "http://testserver/files/a/b",
    }
    assert client.url("/bookmarks/[id]", id=1) == "http://testserver/bookmarks/1"


def test_client_sets_env_and_restores_it(make_project: MakeProject) -> None:
    import os

    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/index.py": "import os\nAT_LOAD = os.environ.get('QR_TEST_VAR')\ndef get(): return {'load': AT_LOAD, 'now': os.environ.get('QR_TEST_VAR')}",
        }
    )
    assert "QR_TEST_VAR" not in os.environ
    with Client(root, env={"QR_TEST_VAR": "on"}) as client:
        assert client.get("/").json() == {"load": "on", "now": "on"}
    assert "QR_TEST_VAR" not in os.environ


def test_client_installs_a_platform_only_when_none_is_set(make_project: MakeProject) -> None:
    from qr.runtime import ports

    class Nothing:
        pass

    def platform(name: str) -> ports.Platform:
        return ports.Platform(name, Nothing(), Nothing(), Nothing())  # type: ignore[arg-type]

    root = make_project({"qr.yaml": "name: app\n", "api/index.py": "def get(): return 'x'"})
    with Client(root, platform=platform("mine")):
        assert ports.get_platform().name == "mine"
    assert ports.set_platform(None) is None
    outer = platform("outer")
    ports.set_platform(outer)
    try:
        with Client(root, platform=platform("mine")):
            assert ports.get_platform() is outer
        assert ports.get_platform() is outer
    finally:
        ports.set_platform(None)


def test_broken_project_raises_project_error(make_project: MakeProject) -> None:
    from qr.runtime.errors import ProjectError

    root = make_project({"qr.yaml": "name: app\n", "api/index.py": "def get(nonsense): return 'x'"})
    with pytest.raises(ProjectError, match="nonsense"):
        Client(root)


def test_platform_deadline_shortens_the_route_timeout(make_project: MakeProject) -> None:
    import time

    from qr.runtime.http import create_app
    from qr.runtime.manifest import scan

    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/slow.py": "import asyncio\nasync def get():\n    await asyncio.sleep(30)",
        }
    )
    app = create_app(scan(root))
    # e.g. Lambda's remaining time
    sent, _ = asgi.call(app, asgi.http_scope("/slow", state={"deadline": time.monotonic() + 0.05}))
    assert sent[0]["status"] == 504


def test_failing_hooks_are_500s_not_crashes(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/_middleware.py": """
                def on_response(request, response):
                    if request.url.path == "/bad_response":
                        raise RuntimeError("on_response broke")
                def on_error(error, request):
                    raise RuntimeError("on_error broke too")
            """,
            "api/bad_response.py": "def get(): return 'fine'",
            "api/crash.py": "def get(): raise ValueError('x')",
        }
    )
    assert client.get("/bad_response").status_code == 500
    response = client.get("/crash")
    assert response.status_code == 500
    assert response.json()["error"] == "Internal Server Error"


def test_head_on_a_handler_route(open_client: OpenClient) -> None:
    client = open_client(
        {
            "api/h.py": """
                config = {"methods": ["GET"]}
                def handler(request): return {"method": request.method}
            """
        }
    )
    response = client.head("/h")
    assert (response.status_code, response.content) == (200, b"")
