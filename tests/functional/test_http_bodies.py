"""Request bodies through the in-process client: parsing by content type, limits, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qr.runtime.http import create_app
from qr.runtime.manifest import scan
from qr.runtime.testing import Client
from tests import asgi
from tests.conftest import MakeProject

ECHO = """
from qr.runtime.http.requests import UploadedFile

def describe(value):
    if isinstance(value, UploadedFile):
        return {"file": value.name, "type": value.content_type, "size": value.size, "data": value.read().decode()}
    return value

def post(body):
    if body is None or isinstance(body, (dict, list, int, float, bool)):
        return {"kind": type(body).__name__, "value": body}
    if isinstance(body, str):
        return {"kind": "str", "value": body}
    if isinstance(body, bytes):
        return {"kind": "bytes", "value": body.decode("latin-1")}
    return {"kind": "form", "value": [[k, describe(v)] for k, v in body.multi_items()]}

put = post

def get(body):
    return {"kind": type(body).__name__}
"""


@pytest.fixture
def client(make_project: MakeProject) -> Iterator[Client]:
    root = make_project(
        {
            "qr.yaml": "name: app\n",
            "api/echo.py": ECHO,
            "api/only_json.py": """
                config = {"accepts": ["application/json"]}
                def post(body): return body
            """,
            "api/text_any.py": """
                config = {"accepts": ["text/*"]}
                def post(body): return body
            """,
            "api/no_body.py": "def post(): return 'not read'",
        }
    )
    with Client(root, body_limit=1024 * 1024) as client:
        yield client


def test_json_body(client: Client) -> None:
    assert client.post("/echo", json={"a": [1, 2]}).json() == {
        "kind": "dict",
        "value": {"a": [1, 2]},
    }


def test_json_suffix_media_type(client: Client) -> None:
    response = client.post(
        "/echo", content=b'{"a": 1}', headers={"content-type": "application/merge-patch+json"}
    )
    assert response.json() == {"kind": "dict", "value": {"a": 1}}


def test_malformed_json_is_400_with_json_error(client: Client) -> None:
    response = client.post(
        "/echo", content=b'{"a": 1,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_urlencoded_form_keeps_repeated_fields(client: Client) -> None:
    response = client.post(
        "/echo",
        content=b"tag=a&tag=b&name=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json() == {"kind": "form", "value": [["tag", "a"], ["tag", "b"], ["name", "x"]]}


def test_multipart_with_files(client: Client) -> None:
    response = client.post(
        "/echo",
        data={"title": "hello"},
        files=[
            ("doc", ("notes.txt", b"some text", "text/plain")),
            ("doc", ("more.csv", b"a,b", "text/csv")),
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "form",
        "value": [
            ["title", "hello"],
            ["doc", {"file": "notes.txt", "type": "text/plain", "size": 9, "data": "some text"}],
            ["doc", {"file": "more.csv", "type": "text/csv", "size": 3, "data": "a,b"}],
        ],
    }


def test_truncated_multipart_is_400(client: Client) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="doc"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\npartial conte"
    )
    response = client.post(
        "/echo", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"}
    )
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]


def test_multipart_without_boundary_is_400(client: Client) -> None:
    response = client.post(
        "/echo", content=b"whatever", headers={"content-type": "multipart/form-data"}
    )
    assert response.status_code == 400


def test_text_body_in_its_charset(client: Client) -> None:
    response = client.post(
        "/echo",
        content="café".encode("latin-1"),
        headers={"content-type": "text/plain; charset=latin-1"},
    )
    assert response.json() == {"kind": "str", "value": "café"}


def test_text_body_that_is_not_its_charset_is_400(client: Client) -> None:
    response = client.post(
        "/echo", content=b"\xff\xfe\xfa", headers={"content-type": "text/plain; charset=utf-8"}
    )
    assert response.status_code == 400


def test_octet_stream_is_bytes(client: Client) -> None:
    response = client.post(
        "/echo", content=b"\x00{}", headers={"content-type": "application/octet-stream"}
    )
    assert response.json() == {"kind": "bytes", "value": "\x00{}"}


def test_no_content_type_json_when_it_parses(client: Client) -> None:
    assert client.post("/echo", content=b"[1, 2]").json() == {"kind": "list", "value": [1, 2]}


def test_no_content_type_bytes_when_it_does_not_parse(client: Client) -> None:
    assert client.post("/echo", content=b"plain words").json() == {
        "kind": "bytes",
        "value": "plain words",
    }


def test_empty_body_is_none(client: Client) -> None:
    assert client.post("/echo").json() == {"kind": "NoneType", "value": None}


def test_get_body_is_none_even_when_sent(client: Client) -> None:
    response = client.request("GET", "/echo", content=b'{"a": 1}')
    assert response.json() == {"kind": "NoneType"}


def test_body_over_the_limit_by_content_length_is_413(client: Client) -> None:
    response = client.post("/echo", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "Payload Too Large" in response.json()["error"]


def test_body_over_the_limit_even_if_the_handler_does_not_read_it(client: Client) -> None:
    assert client.post("/no_body", content=b"x" * (1024 * 1024 + 1)).status_code == 413


def test_chunked_body_over_the_limit_is_413_without_reading_the_rest(
    make_project: MakeProject,
) -> None:
    # At the ASGI level: the test client buffers request bodies, a server streams them.
    root = make_project({"qr.yaml": "name: app\n", "api/echo.py": ECHO})
    app = create_app(scan(root), body_limit=1024 * 1024)
    scope = asgi.http_scope(
        "/echo",
        method="POST",
        headers=[(b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")],
    )
    sent, asked = asgi.call(app, scope, [b"y" * 65536] * 64)
    assert sent[0]["status"] == 413
    assert asked == 17  # 16 chunks fill the 1 MB limit; the 17th goes over


def test_seven_megabyte_body_with_the_default_limit_is_413(make_project: MakeProject) -> None:
    root = make_project({"qr.yaml": "name: app\n", "api/echo.py": ECHO})
    with Client(root) as client:
        assert client.post("/echo", json={"ok": True}).status_code == 200
        response = client.post("/echo", content=b"z" * (7 * 1024 * 1024))
    assert response.status_code == 413


def test_unsupported_content_type_is_415(client: Client) -> None:
    response = client.post(
        "/only_json", content=b"<a/>", headers={"content-type": "application/xml"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert client.post("/only_json", json={"ok": 1}).json() == {"ok": 1}


def test_accepts_wildcard(client: Client) -> None:
    ok = client.post("/text_any", content=b"hi", headers={"content-type": "text/markdown"})
    assert ok.text == "hi"
    bad = client.post("/text_any", content=b"{}", headers={"content-type": "application/json"})
    assert bad.status_code == 415


def test_accepts_with_a_body_and_no_content_type_is_415(client: Client) -> None:
    assert client.post("/only_json", content=b"{}").status_code == 415
