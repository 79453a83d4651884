"""``_middleware.py`` hooks, CORS, odd paths, WebSocket/lifespan scopes, through the client."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from qr.runtime.http import create_app
from qr.runtime.manifest import scan
from qr.runtime.testing import Client
from tests import asgi
from tests.conftest import MakeProject

AUTH = """
from qr.runtime import HTTPError

def authenticate(bearer_token, username, password, cookies):
    if bearer_token == "good":
        return {"id": "u1", "role": "admin"}
    if bearer_token == "plain":
        return "u2"
    if username == "ann" and password == "pw":
        return {"id": "ann"}
    if cookies.get("session") == "s1":
        return {"id": "cookie-user"}
    if bearer_token == "forbidden":
        raise HTTPError(403, "not yours")
    if bearer_token == "weird":
        return 42.5
    if bearer_token is not None or username is not None:
        raise HTTPError(401, "bad credentials", {"www-authenticate": "Bearer"})
    return None
"""


@pytest.fixture
def client(make_project: MakeProject) -> Iterator[Client]:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/_middleware.py": AUTH,
            "api/me.py": """
                from qr.runtime import context
                def get(user):
                    now = context.current()
                    return {"user": user, "context_user": now.user_id if now else None}
            """,
            "api/public/health.py": """
                authenticate = None
                def get(user): return {"user": user}
            """,
            "api/admin/_middleware.py": """
                from qr.runtime import HTTPError, Response

                def on_request(request, user):
                    if user is None:
                        raise HTTPError(401, "log in first")
                    if request.query_params.get("short") == "1":
                        return Response("short-circuit", status_code=202)

                def on_response(request, response, user):
                    response.headers["x-seen-by"] = "on_response"

                def on_error(error, request):
                    return Response(f"handled {type(error).__name__}", status_code=503)
            """,
            "api/admin/panel.py": """
                def get(user): return {"panel": user["id"]}
            """,
            "api/admin/crash.py": """
                def get(): raise KeyError("oops")
            """,
        }
    )
    with Client(root) as client:
        yield client


def test_bearer_token_user_is_injected_and_in_the_context(client: Client) -> None:
    response = client.get("/me", headers={"authorization": "Bearer good"})
    assert response.json() == {"user": {"id": "u1", "role": "admin"}, "context_user": "u1"}


def test_bare_string_user_becomes_a_dict(client: Client) -> None:
    assert client.get("/me", headers={"authorization": "Bearer plain"}).json()["user"] == {
        "id": "u2"
    }


def test_basic_credentials(client: Client) -> None:
    token = base64.b64encode(b"ann:pw").decode()
    response = client.get("/me", headers={"authorization": f"Basic {token}"})
    assert response.json()["user"] == {"id": "ann"}


def test_malformed_basic_credentials_count_as_absent(client: Client) -> None:
    response = client.get("/me", headers={"authorization": "Basic %%%not-base64"})
    assert response.json()["user"] is None


def test_cookie_user(client: Client) -> None:
    client.cookies.set("session", "s1")
    assert client.get("/me").json()["user"] == {"id": "cookie-user"}


def test_anonymous_user_is_none(client: Client) -> None:
    assert client.get("/me").json() == {"user": None, "context_user": None}


def test_authenticate_that_raises_401(client: Client) -> None:
    response = client.get("/me", headers={"authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "bad credentials"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_authenticate_that_raises_403(client: Client) -> None:
    assert client.get("/me", headers={"authorization": "Bearer forbidden"}).status_code == 403


def test_authenticate_returning_nonsense_is_a_500(client: Client) -> None:
    assert client.get("/me", headers={"authorization": "Bearer weird"}).status_code == 500


def test_route_with_authenticate_none_under_an_authenticating_folder(client: Client) -> None:
    response = client.get("/public/health", headers={"authorization": "Bearer nope"})
    assert response.status_code == 200
    assert response.json() == {"user": None}


def test_on_request_can_refuse_and_on_response_sees_http_errors(client: Client) -> None:
    response = client.get("/admin/panel")
    assert response.status_code == 401
    assert response.headers["x-seen-by"] == "on_response"


def test_on_request_can_answer_early(client: Client) -> None:
    response = client.get("/admin/panel?short=1", headers={"authorization": "Bearer good"})
    assert (response.status_code, response.text) == (202, "short-circuit")


def test_on_response_runs_after_the_handler(client: Client) -> None:
    response = client.get("/admin/panel", headers={"authorization": "Bearer good"})
    assert response.json() == {"panel": "u1"}
    assert response.headers["x-seen-by"] == "on_response"


def test_on_error_can_answer_an_unhandled_exception(client: Client) -> None:
    response = client.get("/admin/crash", headers={"authorization": "Bearer good"})
    assert (response.status_code, response.text) == (503, "handled KeyError")


def test_cors_preflight(client: Client) -> None:
    response = client.options(
        "/me",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
    assert response.headers["access-control-allow-headers"] == "authorization, content-type"
    assert response.headers["access-control-max-age"] == "600"


def test_cors_header_on_simple_requests(client: Client) -> None:
    response = client.get("/me", headers={"origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in client.get("/me").headers


def test_bare_options_is_answered_with_allow(client: Client) -> None:
    response = client.options("/me")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.fixture
def cors_client(make_project: MakeProject) -> Iterator[Client]:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/closed.py": "config = {'cors': False}\ndef get(): return 'x'",
            "api/listed.py": """
                config = {"cors": {"origins": ["https://a.example"], "credentials": True,
                                   "headers": ["content-type"], "expose_headers": ["x-total"]}}
                def get(): return 'x'
            """,
            "api/own_options.py": """
                def get(): return 'x'
                def options(): return {"custom": True}
            """,
        }
    )
    with Client(root) as client:
        yield client


def test_cors_off_means_no_headers_and_no_options(cors_client: Client) -> None:
    assert (
        "access-control-allow-origin"
        not in cors_client.get("/closed", headers={"origin": "https://a.example"}).headers
    )
    assert cors_client.options("/closed").status_code == 405


def test_cors_origin_list_echoes_allowed_origins_only(cors_client: Client) -> None:
    allowed = cors_client.get("/listed", headers={"origin": "https://a.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://a.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["access-control-expose-headers"] == "x-total"
    assert "Origin" in allowed.headers["vary"]
    other = cors_client.get("/listed", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = cors_client.options(
        "/listed",
        headers={"origin": "https://a.example", "access-control-request-method": "GET"},
    )
    assert preflight.headers["access-control-allow-headers"] == "content-type"


def test_own_options_function_serves_plain_options(cors_client: Client) -> None:
    assert cors_client.options("/own_options").json() == {"custom": True}
    preflight = cors_client.options(
        "/own_options",
        headers={"origin": "https://x.example", "access-control-request-method": "GET"},
    )
    assert preflight.status_code == 204


@pytest.fixture
def path_client(make_project: MakeProject) -> Iterator[Client]:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/files/[...path].py": "def get(path): return {'path': path}",
            "api/tags/[tag].py": "def get(tag): return {'tag': tag}",
            "api/café.py": "def get(): return 'unicode route'",
        }
    )
    with Client(root) as client:
        yield client


def test_dot_dot_segment_is_refused(path_client: Client) -> None:
    # httpx would normalise a literal "..", so send it percent-encoded and raw
    for path in ("/files/%2E%2E/secret", "/files/a/%2e%2e", "/files/%2E/x"):
        response = path_client.get(path)
        assert response.status_code == 400, path
        assert "not allowed" in response.json()["error"]


def test_literal_dot_dot_in_the_raw_path_is_refused(make_project: MakeProject) -> None:
    root = make_project(
        {"qr.yaml": "name: app\n", "api/files/[...path].py": "def get(path): return path"}
    )
    sent, _ = asgi.call(create_app(scan(root)), asgi.http_scope("/files/../etc/passwd"))
    assert sent[0]["status"] == 400


def test_encoded_slash_stays_inside_one_segment(path_client: Client) -> None:
    assert path_client.get("/tags/a%2Fb").json() == {"tag": "a/b"}
    assert path_client.get("/files/a%2Fb/c").json() == {"path": ["a/b", "c"]}


def test_unicode_paths(path_client: Client) -> None:
    assert path_client.get("/tags/%E6%97%A5%E6%9C%AC").json() == {"tag": "日本"}
    assert path_client.get("/café").text == "unicode route"
    assert path_client.get("/caf%C3%A9").text == "unicode route"


def test_invalid_utf8_in_the_path_is_400(path_client: Client) -> None:
    assert path_client.get("/tags/%FF%FE").status_code == 400


def test_websocket_scope_goes_to_the_socket_app(make_project: MakeProject) -> None:
    root = make_project({"qr.yaml": "name: app\n", "api/index.py": "def get(): return 'x'"})
    seen: list[str] = []

    async def socket_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.close", "code": 4000})

    app = create_app(scan(root), websocket=socket_app)
    sent, _ = asgi.call(app, asgi.http_scope("/", kind="websocket"))
    assert seen == ["websocket"]
    assert sent == [{"type": "websocket.close", "code": 4000}]


def test_websocket_scope_without_a_socket_app_is_closed(make_project: MakeProject) -> None:
    root = make_project({"qr.yaml": "name: app\n", "api/index.py": "def get(): return 'x'"})
    sent, _ = asgi.call(create_app(scan(root)), asgi.http_scope("/", kind="websocket"))
    assert sent[0]["type"] == "websocket.close"


def test_lifespan_is_acknowledged(make_project: MakeProject) -> None:
    root = make_project({"qr.yaml": "name: app\n", "api/index.py": "def get(): return 'x'"})
    with Client(root) as client:  # the client runs startup and shutdown
        assert client.get("/").text == "x"
