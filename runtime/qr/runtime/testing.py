"""``Client``: run a qr project in-process in its own tests.

```python
from qr.runtime.testing import Client

def test_bookmarks():
    with Client(".") as client:
        assert client.get("/bookmarks").status_code == 200
```

``Client(project_dir)`` scans the project (``qr.runtime.manifest.scan``: a broken project raises
``ProjectError`` listing every problem), builds the same ASGI app ``qr dev`` and Lambda serve, and
talks to it through Starlette's ``TestClient`` (an ``httpx.Client``): ``get``, ``post(json=...)``,
``put``, ``patch``, ``delete``, ``head``, ``options``, ``request``, cookies, headers... Nothing
listens on a port. Unlike Starlette's client it does not follow redirects unless asked
(``follow_redirects=True``), so a test sees the 303 a handler returned.

``env`` entries are set in ``os.environ`` before the project's modules load and restored on
``close()``. Each Client has its own platform (the adapters behind ``queues``, ``socket`` and
``url``): ``make_platform`` plugs in the local adapters (a throw-away SQLite queue engine,
in-process WebSocket connections), ``platform=`` passes one in. The platform is global to the
process, so a Client makes its own the current one when it is created and again whenever it is
used (a request, a WebSocket, ``run_queue``, ``drain``, ``run_schedule``, ``job``): two Clients
alive at once each push into their own queues. A platform someone else installed (not a Client's)
is left in place. ``close()`` puts back what was there before. ``url()`` builds URLs on
``base_url``.

``client.websocket(path)`` opens a WebSocket connection to the project's ``socket/`` handlers
(the same dispatch ``qr dev`` and Lambda run); ``client.run_schedule(name)`` runs a schedule's
handler now and returns its result. ``client.run_queue(name)`` runs the jobs queued on ``name``
(by requests, by other jobs) through the real SQLite engine and worker, and ``client.drain()``
every queue's, returning each run's ``JobOutcome``; ``client.engine`` is that engine.
``client.job(job_id)`` (or ``jobs.get(job_id)`` in the project's code) reads a job's state.

This module runs only on developer machines (it imports httpx); it is never part of a bundle.
"""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from starlette.testclient import TestClient, WebSocketTestSession
from starlette.types import ASGIApp

from qr.runtime import ports, urls
from qr.runtime._suggest import did_you_mean
from qr.runtime.http import QrApp, create_app
from qr.runtime.http.app import DEFAULT_BODY_LIMIT
from qr.runtime.jobs import run_schedule_job
from qr.runtime.local.connections import LocalRegistry, LocalSockets
from qr.runtime.local.engine import Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.local.websocket import LocalSocketApp
from qr.runtime.local.worker import JobOutcome, LocalQueuePort, Worker
from qr.runtime.manifest import Manifest, scan
from qr.runtime.sockets import SocketDispatch

__all__ = ["Client"]

_CLIENT_PLATFORMS: weakref.WeakSet[ports.Platform] = weakref.WeakSet()
"""Platforms Clients made or were given: a Client may replace one of these as the current one."""
_OPEN_PLATFORMS: weakref.WeakSet[ports.Platform] = weakref.WeakSet()
"""Those whose Client is not closed yet (the ones ``close()`` may put back)."""


class Client(TestClient):
    """An in-process HTTP client for a qr project (see the module docstring)."""

    __test__ = False

    def __init__(
        self,
        project_dir: str | Path = ".",
        *,
        env: Mapping[str, str] | None = None,
        base_url: str = "http://testserver",
        platform: ports.Platform | None = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = False,
        body_limit: int = DEFAULT_BODY_LIMIT,
        dev: bool = False,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self._saved_env: dict[str, str | None] = {}
        self._previous_platform: ports.Platform | None = None
        self.platform: ports.Platform | None = None
        self._saved_base = urls.set_default_base_url(base_url)
        self._closed = False
        for key, value in (env or {}).items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        try:
            self.manifest: Manifest = scan(self.project_dir)
            self.platform = platform or self.make_platform(base_url)
            if self.platform is not None:
                _CLIENT_PLATFORMS.add(self.platform)
                _OPEN_PLATFORMS.add(self.platform)
                self._previous_platform = ports.current_platform()
            self._activate()
            self.http_app: QrApp = create_app(
                self.manifest, dev=dev, body_limit=body_limit, websocket=self.make_websocket_app()
            )
        except BaseException:
            self._restore()
            raise
        super().__init__(
            self.http_app,
            base_url=base_url,
            headers=headers,
            follow_redirects=follow_redirects,
        )

    def make_platform(self, base_url: str) -> ports.Platform | None:
        """The local platform: a throw-away SQLite queue engine, in-process WebSocket connections."""
        self._scratch = tempfile.TemporaryDirectory(prefix="qr-test-")
        self.engine = Engine(
            Path(self._scratch.name) / "queues.db",
            keep_results={q.name: q.config.keep_results for q in self.manifest.queues},
        )
        self.sockets = LocalSockets()
        return ports.Platform(
            "local",
            LocalQueuePort(self.engine),
            self.sockets,
            LocalRegistry(),
            base_url=base_url,
            dev=True,
            queue_names=frozenset(q.name for q in self.manifest.queues),
            jobs=SqliteJobStore(self.engine),
            status_queues=self.manifest.status_queues,
        )

    def _activate(self) -> None:
        """Make this Client's platform the current one, unless one that no Client made is."""
        current = ports.current_platform()
        if self.platform is None or current is self.platform:
            return
        if current is None or current in _CLIENT_PLATFORMS:
            ports.set_platform(self.platform)

    def request(self, *args: Any, **kwargs: Any) -> Any:  # TestClient's (httpx2's) Response
        self._activate()
        return super().request(*args, **kwargs)

    def websocket_connect(self, *args: Any, **kwargs: Any) -> WebSocketTestSession:
        self._activate()
        return super().websocket_connect(*args, **kwargs)

    def job(self, job_id: str) -> ports.JobState | None:
        """The state of a job pushed in this test (``None``: unknown id), as ``jobs.get``."""
        self._activate()
        platform = ports.get_platform("Client.job()")
        if platform.jobs is None:
            raise RuntimeError("Client.job() needs a platform that keeps job state")
        return platform.jobs.get(job_id)

    def make_websocket_app(self) -> ASGIApp | None:
        """The local WebSocket endpoint over the installed platform's connections."""
        platform = ports.get_platform("Client.websocket()")
        sockets = platform.sockets
        if not isinstance(sockets, LocalSockets):  # a platform passed in: serve through ours
            sockets = LocalSockets()
        self.socket_dispatch = SocketDispatch(self.manifest)
        return LocalSocketApp(self.socket_dispatch, sockets)

    def websocket(self, path: str = "/", **kwargs: Any) -> WebSocketTestSession:  # type: ignore[override]
        """Open a WebSocket connection (use it as a context manager): ``send_json``,
        ``receive_json``, ``send_text``, ``receive_text``, ``send_bytes``, ``close``... Refused
        connections raise ``starlette.testclient.WebSocketDenialResponse`` (its status code is
        the ``HTTPError`` that ``on_connect`` raised)."""
        return self.websocket_connect(path, **kwargs)

    def run_queue(self, name: str) -> list[JobOutcome]:
        """Run the jobs of queue ``name`` that are ready now, with the real local engine, until none
        is (jobs they push to it run too); returns each run's outcome (``ok``, ``retry``, ``dead``)
        with its result or error. Jobs waiting for a delay or a retry backoff are left queued."""
        if self.manifest.queue(name) is None:
            known = [q.name for q in self.manifest.queues]
            raise KeyError(
                f"no queue named {name!r}.{did_you_mean(name, known)} "
                f"(queues: {', '.join(known) or 'none'})"
            )
        return self._drain([name])

    def drain(self) -> list[JobOutcome]:
        """Run every ready job of every queue until none is left (see ``run_queue``)."""
        return self._drain(None)

    def _drain(self, names: list[str] | None) -> list[JobOutcome]:
        self._activate()
        engine: Engine | None = getattr(self, "engine", None)
        if engine is None:
            raise RuntimeError(
                "run_queue()/drain() need the Client's own local platform; do not pass platform="
            )
        worker = Worker(engine, self.manifest.queues)
        with self._portal_factory() as portal:
            return portal.call(worker.drain, names)

    def run_schedule(self, name: str) -> Any:
        """Run schedule ``name``'s handler now, as its cron would; returns what it returns
        (exceptions propagate)."""
        schedule = self.manifest.schedule(name)
        if schedule is None:
            known = ", ".join(s.name for s in self.manifest.schedules) or "none"
            raise KeyError(f"no schedule named {name!r} (schedules: {known})")
        job_id = uuid.uuid4().hex
        self._activate()
        with self._portal_factory() as portal:
            return portal.call(
                functools.partial(run_schedule_job, schedule, job_id, datetime.now(UTC))
            )

    def close(self) -> None:
        super().close()
        self._restore()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            self._restore()

    def _restore(self) -> None:
        if self._closed:
            return
        self._closed = True
        engine: Engine | None = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
        scratch: tempfile.TemporaryDirectory[str] | None = getattr(self, "_scratch", None)
        if scratch is not None:
            scratch.cleanup()
        if self.platform is not None and ports.current_platform() is self.platform:
            previous = self._previous_platform
            ports.set_platform(previous if previous in _OPEN_PLATFORMS else None)
        if self.platform is not None:
            _OPEN_PLATFORMS.discard(self.platform)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        urls.set_default_base_url(self._saved_base)

    def url(self, route: str, /, **params: Any) -> str:
        """``url(route, ...)`` as the app would build it."""
        return urls.build(route, params)
