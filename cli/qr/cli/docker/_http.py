"""A small threaded HTTP server for the endpoints qr serves to containers.

The Runtime API and the local AWS endpoints are called by code inside the containers, one short
request at a time (or one long poll per container), so ``http.server`` threads are enough and keep
them independent of the dev server's event loop. Replies go out in one buffered write with Nagle
off: otherwise each exchange waits ~40 ms for a delayed ACK between header and body segments.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A container that disconnects mid-request is not worth a traceback."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

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
