"""Handler results -> HTTP responses.

A handler returns plain data and qr picks the response: dict, list, dataclass or a pydantic-style
model (anything with ``model_dump``) -> JSON 200; ``str`` -> text/plain 200; ``bytes`` ->
application/octet-stream 200; ``None`` -> 204; any Starlette ``Response`` (``qr.runtime.Response``
is one) -> sent as given. ``HTTPError`` becomes ``{"error": detail}`` with its status and headers.

JSON is compact UTF-8; values the ``json`` module does not know (datetime, date, UUID, Decimal,
sets, nested dataclasses and models) are converted by ``_json_default``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import Response as StarletteResponse

from qr.runtime.errors import HTTPError

__all__ = ["Response", "error_response", "json_response", "render"]


class Response(StarletteResponse):
    """A Starlette ``Response`` with helpers for the common cases.

    ``Response("hi", status_code=201, media_type="text/plain")`` works as in Starlette;
    ``Response.json(data, status=201)``, ``Response.text(...)`` and ``Response.redirect(url)``
    build the usual ones.
    """

    @classmethod
    def redirect(
        cls, url: str, status: int = 303, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Redirect to ``url`` (303 See Other by default: the client follows with a GET)."""
        if not 300 <= status <= 399:
            raise ValueError(f"a redirect status must be 3xx, got {status}")
        return cls(status_code=status, headers={**(headers or {}), "location": url})

    @classmethod
    def json(
        cls,
        data: object,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> Response:
        return cls(
            encode_json(data),
            status_code=status,
            headers=headers,
            media_type="application/json",
            background=background,
        )

    @classmethod
    def text(
        cls, text: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return cls(text, status_code=status, headers=headers, media_type="text/plain")


def render(result: object) -> StarletteResponse:
    """Turn what a handler returned into a response (see the module docstring)."""
    if type(result) is dict or type(result) is list:  # the common case first
        return json_response(result)
    if isinstance(result, StarletteResponse):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return Response(result, media_type="text/plain")
    if isinstance(result, bytes | bytearray | memoryview):
        return Response(bytes(result), media_type="application/octet-stream")
    return json_response(result)


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> StarletteResponse:
    return _JsonResponse(encode_json(data), status_code=status, headers=headers)


class _JsonResponse(Response):
    """A JSON ``Response`` whose headers are made without Starlette's general case (a response
    per request: that case costs about as much as encoding a small body)."""

    media_type = "application/json"

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        if headers is not None or self.status_code < 200 or self.status_code in (204, 304):
            super().init_headers(headers)
            return
        length = str(len(self.body)).encode("latin-1")
        self.raw_headers = [(b"content-length", length), _JSON_TYPE]


_JSON_TYPE = (b"content-type", b"application/json")


def error_response(error: HTTPError) -> StarletteResponse:
    return json_response({"error": error.detail}, error.status, error.headers)


def encode_json(data: object) -> bytes:
    try:
        text = _ENCODER.encode(data)
    except ValueError as exc:  # NaN/Infinity, circular references
        raise TypeError(f"the result cannot be sent as JSON: {exc}") from exc
    return text.encode("utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):
        try:
            return value.model_dump(mode="json")
        except TypeError:  # model_dump() without pydantic's mode argument
            return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(
        f"the result contains a {type(value).__name__}, which cannot be sent as JSON; "
        "return dicts, lists, strings, numbers, dataclasses or models (or a Response)"
    )


# One encoder for every response: json.dumps() with options builds a new one per call.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
)
