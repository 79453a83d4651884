"""Request bodies: size limit, content-type check, parsing by media type.

The limit is enforced on the ASGI ``receive`` channel itself (``LimitedReceive``), so every way of
reading the body (``body`` injection, ``await request.body()``, ``request.form()``, streaming)
stops at the limit: a ``Content-Length`` over it is refused before anything is read, a chunked body
as soon as the running total passes it (413, the rest is never read).

``parse_body`` picks the parser from the media type:

* ``application/json`` and ``*/*+json`` -> the decoded value (invalid JSON -> 400);
* ``application/x-www-form-urlencoded`` and ``multipart/form-data`` -> a ``Form`` multi-dict
  (Starlette's form parser over python-multipart), repeated fields kept, files as ``UploadedFile``;
  a multipart body that stops before its closing boundary is a 400, not a silently shorter form;
* ``text/*`` -> ``str`` in the declared charset (default UTF-8);
* no content type -> JSON when it parses, else the raw ``bytes``;
* anything else (``application/octet-stream`` included) -> ``bytes``.

An empty body is ``None``; GET, HEAD and OPTIONS requests always get ``None``.

Header values are bytes on the wire; Starlette reads them as latin-1, so a UTF-8 value
(``x-name: 日本``, which browsers and API Gateway send as UTF-8) would reach handlers as mojibake.
``QrRequest`` (the ``request`` handlers get) reads each value as UTF-8 when it is valid UTF-8,
else as latin-1: ``headers`` (and the cookies parsed from them) hold what the client sent.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from typing import IO

from starlette.datastructures import Headers, ImmutableMultiDict, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message, Receive

from qr.runtime.errors import HTTPError

BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RequestHeaders(Headers):
    """Starlette's request headers with each value read as UTF-8 when it is valid UTF-8."""

    def values(self) -> list[str]:  # type: ignore[override]
        return [_text(value) for _, value in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(key.decode("latin-1"), _text(value)) for key, value in self._list]

    def getlist(self, key: str) -> list[str]:
        wanted = key.lower().encode("latin-1")
        return [_text(value) for name, value in self._list if name == wanted]

    def __getitem__(self, key: str) -> str:
        wanted = key.lower().encode("latin-1")
        for name, value in self._list:
            if name == wanted:
                return _text(value)
        raise KeyError(key)


class QrRequest(Request):
    """The ``request`` handlers get: a Starlette ``Request`` whose ``headers`` are ``RequestHeaders``."""

    @property
    def headers(self) -> RequestHeaders:
        headers = getattr(self, "_headers", None)
        if not isinstance(headers, RequestHeaders):
            headers = self._headers = RequestHeaders(scope=self.scope)
        return headers


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:  # not UTF-8: latin-1, as HTTP historically allows
        return value.decode("latin-1")


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit


class LimitedReceive:
    """An ASGI ``receive`` that raises ``BodyTooLarge`` past ``limit`` bytes of body."""

    __slots__ = ("limit", "receive", "total")

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.total = 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            self.total += len(chunk)
            if self.total > self.limit:
                raise BodyTooLarge(self.limit)
        return message


class UploadedFile:
    """A file from a multipart form: ``name``, ``content_type``, ``size``, ``read()``.

    ``read()`` is synchronous (the upload is already spooled to memory or a temporary file), so
    sync and async handlers use it alike.
    """

    def __init__(self, upload: UploadFile, field: str) -> None:
        self._upload = upload
        self.field = field
        """The form field the file came in."""
        self.name = upload.filename or ""
        """The file name the client sent."""
        self.filename = self.name
        self.content_type = upload.content_type or "application/octet-stream"
        self.size = upload.size if upload.size is not None else 0
        self.headers = upload.headers

    @property
    def file(self) -> IO[bytes]:
        return self._upload.file

    def read(self, size: int = -1) -> bytes:
        return self._upload.file.read(size)

    def seek(self, offset: int) -> int:
        return self._upload.file.seek(offset)

    def __repr__(self) -> str:
        return f"UploadedFile(name={self.name!r}, content_type={self.content_type!r}, size={self.size})"


Form = ImmutableMultiDict[str, "str | UploadedFile"]


def media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def accepted(content_type: str | None, accepts: Sequence[str]) -> bool:
    """Does the request's media type match one of ``accepts`` (``text/*`` and ``*/*`` allowed)?"""
    media = media_type(content_type)
    if media is None:
        return False
    kind = media.split("/", 1)[0]
    return any(a in (media, "*/*", f"{kind}/*") for a in accepts)


def has_body(request: Request) -> bool:
    headers = request.headers
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


async def parse_body(request: Request, receive: LimitedReceive) -> object:
    if request.method in BODYLESS_METHODS:
        return None
    content_type = request.headers.get("content-type")
    media = media_type(content_type)
    if media in _FORM_TYPES:
        return await _form(request, receive, media == "multipart/form-data")
    raw = await request.body()
    if not raw:
        return None
    if media is None:
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HTTPError(400, f"the request body is not valid JSON: {exc}") from exc
    if media.startswith("text/"):
        charset = _charset(content_type or "")
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"the request body is not valid {charset} text") from exc
    return raw


async def _form(request: Request, receive: LimitedReceive, multipart: bool) -> Form:
    # The whole body is read first (it is within the limit, and Lambda delivers it whole anyway):
    # python-multipart takes a body cut off mid-part as a shorter form, so completeness is
    # checked here, before the parser spools any file.
    raw = await request.body()
    if multipart:
        boundary = _boundary(request.headers.get("content-type", ""))
        if not boundary:
            raise HTTPError(400, "a multipart/form-data body needs a boundary in its Content-Type")
        closing = b"--" + boundary.encode("latin-1") + b"--"
        if not raw[-1024:].rstrip(b"\r\n \t").endswith(closing):
            raise HTTPError(
                400, "the multipart body is truncated: it ends before its closing boundary"
            )
    try:
        form = await request.form(max_part_size=receive.limit)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", str(exc))
        raise HTTPError(400, f"the form body is not valid: {detail}") from exc
    items: list[tuple[str, str | UploadedFile]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            items.append((key, UploadedFile(value, key)))
        else:
            items.append((key, value))
    return ImmutableMultiDict(items)


def _boundary(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"')
    return ""


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                return name
    return "utf-8"
