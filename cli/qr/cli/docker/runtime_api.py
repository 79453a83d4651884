"""The Lambda Runtime API, served by qr to one container.

Lambda gives every execution environment its own Runtime API endpoint; so does qr: each warm
container gets a small threaded HTTP server on its own port (``AWS_LAMBDA_RUNTIME_API``), and the
server asks its ``RuntimeBackend`` (the pool's slot for that container) for work. Routes, as AWS
documents them for custom runtimes:

* ``GET  /2018-06-01/runtime/invocation/next`` - long poll; the event as the body, with the
  ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``, ``-Invoked-Function-Arn`` and
  ``-Trace-Id`` headers;
* ``POST /2018-06-01/runtime/invocation/{id}/response`` - the function's result (202);
* ``POST /2018-06-01/runtime/invocation/{id}/error`` - the function raised (202);
* ``POST /2018-06-01/runtime/init/error`` - importing the handler failed (202).

An unknown request id is a 400, a response over Lambda's 6 MB limit a 413, anything else a 404.
HTTP/1.1 keep-alive, so a warm container reuses one connection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol

from qr.cli.docker._http import Handler, Serving

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")


@dataclass(frozen=True)
class Work:
    """One invocation as handed to the container."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str = ""


class RuntimeBackend(Protocol):
    def next_invocation(self) -> Work | None:
        """Block until there is work; ``None`` when the container is being stopped."""
        ...

    def respond(self, request_id: str, payload: bytes) -> bool:
        """The result of ``request_id``; ``False`` when that id is not running here."""
        ...

    def fail(self, request_id: str, error: bytes, error_type: str) -> bool: ...

    def init_failed(self, error: bytes, error_type: str) -> None: ...


class RuntimeAPIServer(Serving):
    """One container's Runtime API endpoint, served from a background thread."""

    def __init__(self, backend: RuntimeBackend, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(type("RuntimeAPI", (_Handler,), {"backend": backend}), host, port)

    def start(self) -> RuntimeAPIServer:  # type: ignore[override]
        super().start()
        return self


class _Handler(Handler):
    backend: RuntimeBackend

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self.reply(404, {"errorMessage": f"unknown path {self.path}"})
            return
        work = self.backend.next_invocation()
        if work is None:
            self.reply(503, {"errorMessage": "the container is being stopped"})
            return
        self.reply(
            200,
            work.payload,
            {
                "Lambda-Runtime-Aws-Request-Id": work.request_id,
                "Lambda-Runtime-Deadline-Ms": str(work.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": work.function_arn,
                "Lambda-Runtime-Trace-Id": work.trace_id,
            },
        )

    def do_POST(self) -> None:
        body = self.read_body()
        error_type = self.headers.get(ERROR_TYPE_HEADER) or "Unknown"
        if self.path == f"{PREFIX}/init/error":
            self.backend.init_failed(body, error_type)
            self.reply(202, {"status": "OK"})
            return
        match = _INVOCATION.match(self.path)
        if match is None:
            self.reply(404, {"errorMessage": f"unknown path {self.path}"})
            return
        request_id, what = match.groups()
        if what == "response" and len(body) > MAX_RESPONSE_BYTES:
            message = f"response of {len(body)} bytes is over the {MAX_RESPONSE_BYTES} byte limit"
            self.backend.fail(
                request_id,
                json.dumps({"errorMessage": message, "errorType": "ResponseSizeTooLarge"}).encode(),
                "ResponseSizeTooLarge",
            )
            self.reply(413, {"errorMessage": message, "errorType": "RequestEntityTooLarge"})
            return
        if what == "response":
            known = self.backend.respond(request_id, body)
        else:
            known = self.backend.fail(request_id, body, error_type)
        if not known:
            self.reply(400, {"errorMessage": f"invalid request id {request_id}"})
            return
        self.reply(202, {"status": "OK"})
