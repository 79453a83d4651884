"""A small threaded HTTP server for the local AWS endpoints qr serves to containers.

They are called by code inside the containers, one short request at a time, so ``http.server``
threads are enough and keep them independent of the dev server's event loop (the Runtime API,
two requests per warm invocation, is served on that loop instead: ``runtime_api``). Replies go
out in one buffered write with Nagle off: otherwise each exchange waits ~40 ms for a delayed ACK
between header and body segments.

The request head is parsed by hand (``Handler.parse_request``): ``http.server`` hands header
parsing to the ``email`` package, which took longer than the rest of the exchange. The callers
are HTTP/1.1 clients on this machine (boto3); a malformed request line or header is a 400.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, overload

_MAX_HEADERS = 100


class Headers:
    """A request's header fields, looked up without regard to case."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields
        """Lower-case name -> value (a repeated field keeps its last value)."""

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A container that disconnects mid-request is not worth a traceback."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    headers: Headers  # type: ignore[assignment]  # not an email.message.Message: see the docstring
    raw_requestline: bytes

    def parse_request(self) -> bool:
        """The request line and header fields of ``raw_requestline`` and ``rfile``."""
        line = str(self.raw_requestline, "latin-1").rstrip("\r\n")
        self.requestline = line
        self.command, self.request_version, self.close_connection = "", "HTTP/1.1", True
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.send_error(400, f"bad request line {line!r}")
            return False
        self.command, self.path, self.request_version = parts
        fields: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = str(raw, "latin-1").partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(400, f"bad header line {raw!r}")
                return False
            fields[name.lower()] = value.strip()
        else:
            self.send_error(431, "too many header fields")
            return False
        self.headers = Headers(fields)
        connection = fields.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        return True

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and ``Date`` (formatted once a second), no ``Server`` field."""
        self.send_response_only(code, message)
        self.send_header("Date", http_date())

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: the callers report what matters."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(
        self, status: int, body: bytes | Any = b"", headers: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        headers = headers or {}
        if "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the caller went away mid-reply
            self.close_connection = True


class UtcSecond:
    """``time.strftime(form)`` of a UTC second, formatted once per second: a timestamp per request
    (HTTP ``Date``, API Gateway's ``requestContext.time``) without a ``strftime`` each time."""

    def __init__(self, form: str) -> None:
        self.form = form
        self._stamp: tuple[int, str] = (-1, "")

    def __call__(self, epoch: float | None = None) -> str:
        second = int(time.time() if epoch is None else epoch)
        last, text = self._stamp  # one tuple: threads never see a half-updated pair
        if second != last:
            text = time.strftime(self.form, time.gmtime(second))
            self._stamp = (second, text)
        return text


http_date = UtcSecond("%a, %d %b %Y %H:%M:%S GMT")
"""The ``Date`` header's value for now."""


class Serving:
    """Runs a ``QuietServer`` on a background thread."""

    def __init__(self, handler: type[Handler], host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = QuietServer((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=handler.__name__, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
