"""Wiring ``qr dev`` together and running it under uvicorn.

``run(options)``:

0. takes the project's dev server lock (a second ``qr dev`` on the project is refused, naming
   the first one's pid and port) and binds the port (a port in use is a ``QrError``), before
   anything else starts;
1. applies the environment (``.env`` < shell < ``--env``) and scans the project (a broken project
   at start is an error: there is no last good version to serve);
2. installs the local platform (``qr.runtime.ports.set_platform``): the SQLite queue engine in
   ``.qr/dev/queues.db`` (durable across restarts), in-process WebSocket connections;
3. builds the parts: ``LiveProject`` (manifest + HTTP app, hot reload), ``SocketDispatch`` and
   its ASGI endpoint, the queue ``Worker``, the ``Scheduler``; reloads reach them as listeners;
4. serves ``DevApp`` with uvicorn on one port. Lifespan start: worker, scheduler, file watcher.
   Once listening: the handler table, the URLs, ``.qr/dev/server.json`` (with the control
   token, ``qr.cli.dev.guard``); a warning when ``--host`` makes it reachable from the network.
5. Ctrl+C: the worker and the scheduler take no more work at once, and the console says how long
   running jobs get (``grace``). WebSocket connections are closed with 1001 (going away), uvicorn
   lets open requests finish, then jobs and schedule runs still running when the grace ends (or
   at a second Ctrl+C) are cancelled and their jobs given back to the queue (they run again on
   the next start). A sync handler's thread cannot be stopped: when one is still running once
   the event loop is closed, the process ends with ``os._exit`` (after flushing the console)
   instead of waiting for it, so no handler runs on after ``qr dev`` said it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import os
import signal
import socket as socket_module
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp

from qr.cli.console import Output
from qr.cli.dev.app import DevApp
from qr.cli.dev.control import ServerLock, remove_state, write_state
from qr.cli.dev.dashboard.feed import Feed, FeedSockets
from qr.cli.dev.dashboard.pages import Dashboard
from qr.cli.dev.env import DevEnvironment
from qr.cli.dev.frames import ApiGatewayFrames
from qr.cli.dev.guard import ControlGuard
from qr.cli.dev.log import DevLog
from qr.cli.dev.reload import RELOAD_TIMEOUT, LiveProject, watch
from qr.cli.dev.scheduler import Scheduler, SchedulerClock
from qr.cli.docker.dev import DockerHttpApp, DockerSocketDispatch, DockerWorker
from qr.cli.docker.dev import run_schedule as run_docker_schedule
from qr.cli.docker.engine import container_start_error
from qr.cli.docker.function import DockerFunction, DockerSettings
from qr.cli.errors import QrError
from qr.cli.routes_table import print_routes
from qr.runtime.http import create_app
from qr.runtime.jobs import run_schedule_job
from qr.runtime.local.connections import LocalRegistry
from qr.runtime.local.engine import DB_PATH, Engine
from qr.runtime.local.job_state import SqliteJobStore
from qr.runtime.local.websocket import LocalSocketApp
from qr.runtime.local.worker import LocalQueuePort, Worker
from qr.runtime.manifest import Manifest, Schedule
from qr.runtime.ports import Platform, set_platform
from qr.runtime.sockets import CLOSE_GOING_AWAY, MAX_MESSAGE_BYTES, SocketDispatch

SHUTDOWN_GRACE = 5.0
"""Seconds running jobs, schedule runs and requests get to finish at Ctrl+C (``--grace``)."""
CLOCK_SCALE_VARIABLE = "QR_DEV_CLOCK_SCALE"
"""Makes the schedule clock run N times faster (for tests and demos of rate schedules)."""


@dataclass
class DevOptions:
    root: Path
    host: str = "127.0.0.1"
    port: int = 8000
    env: dict[str, str] = field(default_factory=dict)
    reload: bool = True
    docker: bool = False
    """Run the handlers in warm Lambda-like containers (``qr.cli.docker``)."""
    dashboard: bool | None = None
    """Serve the dashboard under ``/_qr/``. ``None``: only when bound to a loopback address (a
    ``--host`` reachable from the network needs an explicit ``--dashboard``)."""
    grace: float = SHUTDOWN_GRACE
    """Seconds running handlers get to finish at Ctrl+C before their jobs are given back."""
    reload_timeout: float = RELOAD_TIMEOUT
    """Seconds a hot reload may spend importing the project before it is abandoned."""

    @property
    def dashboard_on(self) -> bool:
        return self.dashboard if self.dashboard is not None else _loopback(self.host)


class DevServer:
    """Everything ``qr dev`` runs in one process."""

    def __init__(self, options: DevOptions, out: Output) -> None:
        self.options = options
        self.root = options.root.resolve()
        self.out = out
        self.log = DevLog(out)
        self.feed = Feed()
        self.log.attach(self.feed)
        self.env = DevEnvironment(self.root, options.env)
        self.env.apply()
        _configure_logging(self.log)
        self.function: DockerFunction | None = None
        self.startup_error: QrError | None = None
        """Why the lifespan startup failed, reported by ``run`` in qr's words (uvicorn is told
        nothing it would print)."""
        self.live = LiveProject(self.root, self._http_app, self.log, timeout=options.reload_timeout)
        manifest = self.live.manifest
        self.engine = Engine(self.root / DB_PATH)
        self.registry = LocalRegistry()
        self.sockets = FeedSockets(self.feed, self.registry)
        self.platform = Platform(
            "local",
            LocalQueuePort(self.engine),
            self.sockets,
            self.registry,
            base_url=f"http://localhost:{options.port}",
            dev=True,
            jobs=SqliteJobStore(self.engine),
        )
        self._set_queue_names(manifest)
        self.dispatch = SocketDispatch(manifest, observer=self.log.socket_event)
        socket_dispatch = self.dispatch
        run_schedule = _run_schedule
        if options.docker:
            settings = DockerSettings.from_environ(environment=self.env.project_values)
            self.function = DockerFunction(manifest, self.platform, settings)
            self.function.start(start_pool=False)  # the containers start with the loop
            self.live.app = DockerHttpApp(self.function, on_access=self.log.access)
            socket_dispatch = cast(SocketDispatch, DockerSocketDispatch(self.function))
            run_schedule = functools.partial(run_docker_schedule, self.function)
        self.worker = self._new_worker(manifest)
        scale = float(os.environ.get(CLOCK_SCALE_VARIABLE) or 1)
        self.scheduler = Scheduler(
            manifest,
            run_schedule,
            report=self.log.schedule_run,
            clock=SchedulerClock(scale),
        )
        self.live.listeners.append(self._reloaded)
        self.guard = ControlGuard(bound_host=options.host)
        dashboard = None
        if options.dashboard_on:
            dashboard = Dashboard(
                self.live,
                self.engine,
                SqliteJobStore(self.engine),
                self.platform.queues,
                self.scheduler,
                self.registry,
                self.feed,
                self.guard.token,
            )
        self.app = DevApp(
            self.live,
            LocalSocketApp(socket_dispatch, self.sockets),
            self.scheduler,
            guard=self.guard,
            startup=self.start,
            shutdown=self.stop,
            dashboard=dashboard,
            dashboard_off=(
                f"the dashboard is off: qr dev --host {options.host} serves it only with "
                "--dashboard (it can drive your queues and jobs: keep it to this machine)"
                if options.dashboard is None
                else "the dashboard is off (qr dev --no-dashboard)"
            ),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._feeds: list[asyncio.Task[None]] = []
        """The scheduler's loop and the file watcher: what brings new work or code."""
        self._stop_watching = asyncio.Event()
        self._quit_now = asyncio.Event()
        self._grace_ends: float | None = None
        self._stopped = False

    def _http_app(self, manifest: Manifest) -> ASGIApp:
        if self.function is not None:
            return DockerHttpApp(self.function, on_access=self.log.access)
        return create_app(manifest, dev=True, on_access=self.log.access)

    def _new_worker(self, manifest: Manifest) -> Worker:
        if self.function is None:
            return Worker(self.engine, manifest.queues)
        worker = DockerWorker(self.engine, manifest.queues, self.function)
        self.function.extend = worker.extend
        return worker

    def _set_queue_names(self, manifest: Manifest) -> None:
        if hasattr(self.platform, "queue_names"):
            self.platform.queue_names = frozenset(q.name for q in manifest.queues)
            self.platform.status_queues = manifest.status_queues

    def _reloaded(self, manifest: Manifest) -> None:
        self.dispatch.manifest = manifest
        self.scheduler.update(manifest)
        self._set_queue_names(manifest)
        if self.function is not None:
            # New code reaches the containers: rebuild the bundle, restart them (off the loop).
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(asyncio.to_thread(self.function.reload, manifest)))
        if {q.name: q for q in manifest.queues} != self.worker.queues:
            # Queue definitions changed: a new worker takes over; the old one gives its
            # in-flight jobs back to the engine (none is lost; they run again at once).
            old, self.worker = self.worker, self._new_worker(manifest)
            self.worker.start()
            self._tasks.append(asyncio.get_running_loop().create_task(old.stop()))

    async def start(self) -> None:
        set_platform(self.platform)
        # Closing the loop must not wait for a sync handler's thread (``os._exit`` does, see run).
        asyncio.get_running_loop().set_default_executor(_UnjoinedExecutor())
        if self.function is not None and self.function.pool is None:
            # The containers' Runtime API is served on this loop: no thread hop per request.
            try:
                await asyncio.to_thread(self.function.start_pool, asyncio.get_running_loop())
            except QrError as exc:
                self.startup_error = exc
                raise
            except Exception as exc:  # the engine refused (docker.errors.APIError and kin)
                self.startup_error = container_start_error(exc, self.function.work_dir)
                raise self.startup_error from exc
        self.worker.start()
        self._feeds.append(asyncio.create_task(self.scheduler.run(), name="qr-scheduler"))
        if self.options.reload:
            self._feeds.append(asyncio.create_task(watch(self.live, self.env, self._stop_watching)))
        self._tasks.extend(self._feeds)

    def interrupted(self) -> None:
        """The first Ctrl+C: take no more work; say how long running handlers get."""
        if self._grace_ends is not None:
            return
        grace = self.options.grace
        self._grace_ends = time.monotonic() + grace
        self.worker.stop_claiming()
        self._stop_watching.set()
        for task in self._feeds:
            task.cancel()
        running = len(self.worker.in_flight) + len(self.scheduler.running)
        if running:
            jobs = "job" if running == 1 else "jobs"
            self.log.info(
                f"stopping: waiting up to {grace:g} s for {running} running {jobs}; "
                "Ctrl+C again to quit now"
            )
        else:
            self.log.info("stopping")

    def quit_now(self) -> None:
        """The second Ctrl+C: stop waiting for anything."""
        if not self._quit_now.is_set():
            self._quit_now.set()
            self.log.info("quitting now")

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop_watching.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Running jobs get the rest of the grace, then go back to their queue (they run at the
        # next start; the attempt counts, as on SQS).
        self.worker.stop_claiming()
        ends = self._grace_ends or time.monotonic() + self.options.grace
        running = self.worker.in_flight | self.scheduler.running
        if running and not self._quit_now.is_set():
            await _wait_until(running, ends, self._quit_now)
        await asyncio.gather(self.scheduler.stop(0), self.worker.stop(0))
        if self.function is not None:
            await asyncio.to_thread(self.function.close)
        self.engine.close()
        remove_state(self.root)
        set_platform(None)
        self.log.flush()

    def listening(self, host: str, port: int) -> None:
        """Called once uvicorn is bound: tell the user where, and leave server.json."""
        self.platform.base_url = f"http://localhost:{port}"
        self.guard.port = port
        write_state(self.root, host, port, self.guard.token)
        shown = "localhost" if host in ("127.0.0.1", "localhost") else host
        with self.log.direct() as out:
            print_routes(out, self.live.manifest, datetime.now().astimezone())
        self.log.info(f"qr dev serving {self.live.manifest.config.name} on:")
        with self.log.direct() as out:
            out.line(f"   http://{shown}:{port}")
            out.line(f"   ws://{shown}:{port}")
            if self.options.dashboard_on:
                out.line(f"   dashboard: http://{shown}:{port}/_qr/")
        if not _loopback(host):
            self.log.warning(
                f"--host {host}: the dev server and its control endpoint (/_qr/) are reachable "
                "from the network. Your handlers run with your files and credentials, and the "
                "dev server has no authentication of its own; bind 127.0.0.1 (the default) "
                "unless you need another machine to reach it."
            )

    def serve(self, sock: socket_module.socket) -> None:
        """Serve on ``sock`` (bound by ``bind``) until Ctrl+C."""
        config = uvicorn.Config(
            self.app,
            host=self.options.host,
            port=self.options.port,
            lifespan="on",
            access_log=False,
            log_level="warning",
            ws=ApiGatewayFrames,
            ws_max_size=MAX_MESSAGE_BYTES,
            timeout_graceful_shutdown=max(1, round(self.options.grace)),
        )
        _UvicornServer(config, self).run(sockets=[sock])


class _UvicornServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, dev: DevServer) -> None:
        super().__init__(config)
        self.dev = dev
        self._loop: asyncio.AbstractEventLoop | None = None
        logging.getLogger("uvicorn.error").addFilter(self._startup_failure)

    def _startup_failure(self, record: logging.LogRecord) -> bool:
        """Drop uvicorn's "Application startup failed" when qr reports why itself."""
        return self.dev.startup_error is None or record.levelno < logging.ERROR

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Ctrl+C (a signal, on the main thread): tell the dev server at once, on its loop."""
        first = not self.should_exit
        super().handle_exit(sig, frame)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if first:
            loop.call_soon_threadsafe(self.dev.interrupted)
        elif sig == signal.SIGINT:
            loop.call_soon_threadsafe(self.dev.quit_now)

    async def startup(self, sockets: list[socket_module.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        bound = self.servers[0].sockets[0].getsockname()
        self.dev.listening(self.config.host, int(bound[1]))

    async def shutdown(self, sockets: list[socket_module.socket] | None = None) -> None:
        self.dev.feed.closed = True  # dashboard event streams end within a tick
        closed = self.dev.sockets.close_all(CLOSE_GOING_AWAY, "server shutting down")
        for _ in range(50):  # wait (at most 1 s) for the close frames to go out
            if not self.dev.sockets.open_connections():
                break
            await asyncio.sleep(0.02)
        if closed:
            self.dev.log.info(f"closed {closed} WebSocket connection(s)")
        await super().shutdown(sockets)
        if self.force_exit and not self.dev.stopped:
            # uvicorn skips the lifespan shutdown after a second Ctrl+C: the jobs still go back
            await self.lifespan.shutdown()
        # uvicorn would raise the signals again once its handlers are gone, as a KeyboardInterrupt
        # inside the closing loop (or SIGTERM's default action: no cleanup); qr dev is done.
        self._captured_signals.clear()


class _UnjoinedExecutor(ThreadPoolExecutor):
    """The loop's default executor (sync job handlers run in it). ``asyncio.run`` joins it when
    the loop closes, which would wait for a stuck handler for as long as it sleeps; this one
    returns at once and drops what has not started."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


async def _wait_until(
    tasks: Iterable[asyncio.Future[Any]], deadline: float, quit_now: asyncio.Event
) -> None:
    """Wait for ``tasks`` to finish, until ``deadline`` (monotonic) or ``quit_now``."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(quit_now.wait())
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending and not stop.done():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, pending = await asyncio.wait(
                pending | {stop}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stop)
    finally:
        stop.cancel()


async def _run_schedule(schedule: Schedule, job_id: str, scheduled_at: datetime) -> object:
    return await run_schedule_job(schedule, job_id, scheduled_at)


def _configure_logging(log: DevLog) -> None:
    # One record per request: skip what the console never prints (the logging HOWTO's
    # "Optimization" list): caller lookup, thread/process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = log.handler()
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("uvicorn", "uvicorn.error", "watchfiles", "watchfiles.main"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bind(host: str, port: int) -> socket_module.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on; a port in use is a ``QrError``.

    Binding here (not in uvicorn) puts the error in qr's words before anything starts, and
    leaves no moment in which another program could take the port.
    """
    try:
        infos = socket_module.getaddrinfo(
            host or None, port, type=socket_module.SOCK_STREAM, flags=socket_module.AI_PASSIVE
        )
    except socket_module.gaierror as exc:
        raise QrError(
            f"cannot bind --host {host}: {exc.strerror}",
            "pass an address of this machine, e.g. --host 127.0.0.1 (the default)",
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket_module.socket(family, kind, proto)
    sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise QrError(
                f"port {port} is already in use on {host} (another program listens there)",
                f"pick another port: qr dev --port {port + 1 if port else 8001} "
                "(or --port 0 for any free one), or stop the program using it "
                f"(lsof -i :{port} names it)",
            ) from None
        if exc.errno == errno.EACCES:
            hint = "ports below 1024 need root: pick another with --port"
        else:
            hint = "--host must be an address of this machine (the default is 127.0.0.1)"
        raise QrError(f"cannot listen on {host}:{port}: {exc.strerror}", hint) from None
    return sock  # not inheritable: no child process (pip, docker) keeps the port open


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(options: DevOptions, out: Output | None = None) -> None:
    """``qr dev``: serve the project until Ctrl+C."""
    before = set(threading.enumerate())
    lock = ServerLock(options.root.resolve())
    lock.acquire()
    try:
        sock = bind(options.host, options.port)
        try:
            server = DevServer(options, out or Output())
            try:
                with contextlib.suppress(KeyboardInterrupt), server.log.capture_prints():
                    try:
                        server.serve(sock)
                    except SystemExit:  # uvicorn's exit after a failed startup
                        if server.startup_error is None:
                            raise
                if server.startup_error is not None:
                    raise server.startup_error
            finally:
                if server.function is not None:  # containers never outlive the server
                    server.function.close()
        finally:
            sock.close()
    finally:
        lock.release()
    _leave_stuck_handlers(server.log, before)


def _leave_stuck_handlers(log: DevLog, before: set[threading.Thread], wait: float = 1.0) -> None:
    """End the process now when a thread the server started (a handler's) still runs (its job
    is back on the queue): Python cannot stop a thread, and the interpreter would wait for it."""
    deadline = time.monotonic() + wait
    stuck = []
    for thread in threading.enumerate():
        if thread in before or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))  # idle pool threads end at once
        if thread.is_alive():
            stuck.append(thread)
    if not stuck:
        return
    count = len(stuck)
    threads = "thread" if count == 1 else "threads"
    log.info(f"stopped without waiting for {count} handler {threads} still running")
    log.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
