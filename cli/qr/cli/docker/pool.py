"""A pool of warm containers running the Lambda entry point, fed through the Runtime API.

Each slot owns one container and that container's ``RuntimeAPIServer``. An invocation goes to the
idle container that became idle LAST (a stack, as Lambda reuses the warmest environment), or
waits in a FIFO queue until a container asks ``next``; the pool size is the function's
concurrency. Sequential invocations thus keep hitting one warm container, with its caches, its
imported modules and its thread pool hot, instead of alternating between them. The platform, not the container, enforces the timeout: a timer
starts when a container takes the work, and on expiry the invocation fails with
``FunctionTimeout`` and the container is killed and replaced (as Lambda resets a sandbox).

Lifecycle of a slot: ``starting`` (container created, handler importing) → ``ready`` (it has
polled ``next`` once) → ``dead`` (exited). A container that dies during init (its handler module
fails to import) stays dead with its output kept: the invocations it would have run fail with
``ContainerCrashed`` showing that output, and the next invocation tries a fresh container - the
dev server itself never goes down. Any other exit (a timeout kill, a crash mid-invocation) is
replaced at once so the pool stays warm.

The pool lives on one asyncio event loop (the dev server's own under ``qr dev --docker``, else
one of its own on a thread): the containers' Runtime API servers, the idle stack and queue, the
invocations' futures and the timeout timers are all there, so ``ainvoke`` from a handler on that
loop hands its event to a waiting ``next`` and gets the result back without a thread hop.
Blocking engine calls (start, kill, remove) stay off the loop, except reviving a container
that died during init, which the next invocation does first.

Container stdout/stderr are followed (``attach``, demultiplexed) and handed to ``on_log`` line by
line with the request id the container is working on. ``restart()`` replaces every container,
which is how a code change reaches them (the code is bind-mounted read-only at ``/var/task``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import json
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from qr.cli.docker.image import TASK_ROOT
from qr.cli.docker.runtime_api import LoopThread, RuntimeAPIServer, Work

Stream = Literal["stdout", "stderr"]
POOL_LABEL = "dev.qr.pool"
PROJECT_LABEL = "dev.qr.project"
"""The project root a container serves (several projects may share one engine)."""


class InvocationFailed(Exception):
    """The invocation did not produce a result."""

    def __init__(self, request_id: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.message = message


class FunctionError(InvocationFailed):
    """The handler raised (the Runtime API ``/error`` call)."""

    def __init__(self, request_id: str, error: Mapping[str, Any]) -> None:
        self.error_type = str(error.get("errorType") or "Error")
        self.stack = [str(line) for line in error.get("stackTrace") or []]
        super().__init__(request_id, f"{self.error_type}: {error.get('errorMessage', '')}")


class FunctionTimeout(InvocationFailed):
    pass


class ContainerCrashed(InvocationFailed):
    """The container exited (init error, ``sys.exit``, out of memory) before answering."""

    def __init__(self, request_id: str, message: str, output: list[str]) -> None:
        super().__init__(request_id, message)
        self.output = output


@dataclass(frozen=True)
class LogLine:
    container: str
    request_id: str | None
    """The invocation the container was running, ``None`` during init."""
    stream: Stream
    text: str


@dataclass
class PoolConfig:
    image: str
    task_dir: Path
    handler: str = "qr.runtime.aws.entry.handler"
    size: int = 2
    timeout: float = 30.0
    """Seconds an invocation may run (the function timeout)."""
    function_name: str = "qr-dev"
    memory_mb: int = 512
    region: str = "us-east-1"
    environment: Mapping[str, str] = field(default_factory=dict)
    network: Literal["host", "bridge"] = "bridge"
    """``host`` where bridge networking is unavailable (CI); ``bridge`` otherwise."""
    listen: str | None = None
    """The address the Runtime API servers listen on (``engine.listen_address``); default
    loopback for host networking, every interface for bridge networking."""
    start_timeout: float = 60.0
    """How long ``start()`` waits for containers to finish their init."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra container labels (``PROJECT_LABEL``)."""


@dataclass
class _Job:
    work: Work
    future: asyncio.Future[bytes]
    timeout: float
    timer: asyncio.TimerHandle | None = None


class ContainerPool:
    def __init__(
        self,
        client: Any,
        config: PoolConfig,
        *,
        on_log: Callable[[LogLine], None] = lambda line: None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.on_log = on_log
        self.id = uuid.uuid4().hex[:12]
        self._own = LoopThread("qr-docker-pool") if loop is None else None
        self.loop: asyncio.AbstractEventLoop = loop or self._own.loop  # type: ignore[union-attr]
        """Where the Runtime API servers run and every invocation's state lives."""
        self._pending: deque[_Job] = deque()
        """Invocations no container has taken yet, oldest first (on the loop only)."""
        self._idle: list[_Slot] = []
        """Containers waiting in ``next``, the most recently idle last (on the loop only)."""
        self._lock = threading.Lock()
        """Guards ``_slots`` (changed from the loop, the log threads and ``restart``)."""
        self._slots: list[_Slot] = []
        self._counter = itertools.count(1)
        self._closed = False
        self.last_crash: list[str] = []

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:lambda:{self.config.region}:000000000000:function:{self.config.function_name}"
        )

    def start(self) -> ContainerPool:
        """Start ``size`` containers and wait (bounded) until each is warm or has crashed.

        Not from the pool's loop: the containers' first ``next`` is served there."""
        with self._lock:
            self._slots = [self._new_slot() for _ in range(self.config.size)]
        self._wait_started(self._slots)
        return self

    def restart(self) -> None:
        """Replace every container (new code); waits for the new ones to be warm."""
        with self._lock:
            if self._closed:
                return
            old, self._slots = self._slots, [self._new_slot() for _ in range(self.config.size)]
        for slot in old:
            slot.stop()
        self._wait_started(self._slots)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.stop()
        self.on_loop(
            self._fail_queued,
            lambda job: InvocationFailed(job.work.request_id, "the pool was closed"),
        )
        if self._own is not None:
            self._own.close()

    def __enter__(self) -> ContainerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm_count(self) -> int:
        return sum(1 for slot in self._slots if slot.state == "ready")

    def idle_count(self) -> int:
        """Containers waiting for work right now."""
        return len(self._idle)

    def on_loop(self, action: Callable[..., object], *args: Any) -> None:
        """Run ``action`` on the pool's loop and wait for it (at once when already there, or
        when the loop no longer runs)."""
        loop = self.loop
        if loop.is_closed() or not loop.is_running() or _running_loop() is loop:
            action(*args)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                action(*args)
            finally:
                done.set_result(None)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # closed meanwhile
            action(*args)
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):
            done.result(timeout=10)

    def submit(
        self, event: Any, *, request_id: str | None = None, timeout: float | None = None
    ) -> concurrent.futures.Future[bytes]:
        """Queue an invocation from another thread; the future holds the raw response payload."""

        async def run() -> bytes:
            return await self._submit(event, request_id, timeout)

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def invoke(
        self, event: Any, *, request_id: str | None = None, timeout: float | None = None
    ) -> Any:
        """Run one invocation and return the decoded JSON result (or raise ``InvocationFailed``)."""
        return json.loads(self.submit(event, request_id=request_id, timeout=timeout).result())

    async def ainvoke(
        self, event: Any, *, request_id: str | None = None, timeout: float | None = None
    ) -> Any:
        if asyncio.get_running_loop() is self.loop:
            payload = await self._submit(event, request_id, timeout)
        else:
            future = self.submit(event, request_id=request_id, timeout=timeout)
            payload = await asyncio.wrap_future(future)
        return json.loads(payload)

    def _submit(
        self, event: Any, request_id: str | None, timeout: float | None
    ) -> asyncio.Future[bytes]:
        """Hand out an invocation (on the loop); its future holds the raw response payload."""
        request_id = request_id or str(uuid.uuid4())
        seconds = self.config.timeout if timeout is None else timeout
        payload = event if isinstance(event, bytes) else json.dumps(event).encode()
        deadline_ms = int((time.time() + seconds) * 1000)
        job = _Job(
            Work(request_id, payload, deadline_ms, self.arn), self.loop.create_future(), seconds
        )
        self._revive()
        self._hand_out(job)
        self._fail_if_all_dead()
        return job.future

    def _hand_out(self, job: _Job, *, first: bool = False) -> None:
        """To the most recently idle container, else into the queue (``first``: at its head)."""
        while self._idle:
            slot = self._idle.pop()
            if slot._deliver(job):
                return
        if first:
            self._pending.appendleft(job)
        else:
            self._pending.append(job)

    def _take(self, slot: _Slot) -> _Job | None:
        """The oldest waiting invocation, or ``None`` after marking ``slot`` idle."""
        if self._pending:
            return self._pending.popleft()
        self._idle.append(slot)
        return None

    def _leave_idle(self, slot: _Slot) -> bool:
        """Take ``slot`` off the idle stack; ``False`` when it was not on it."""
        if slot in self._idle:
            self._idle.remove(slot)
            return True
        return False

    def _new_slot(self) -> _Slot:
        slot = _Slot(self, f"qr-{self.config.function_name}-{self.id}-{next(self._counter)}")
        slot.start()
        return slot

    def _wait_started(self, slots: list[_Slot]) -> None:
        end = time.monotonic() + self.config.start_timeout
        for slot in slots:
            slot.started.wait(max(0.0, end - time.monotonic()))

    def _revive(self) -> None:
        """Replace containers that died during init (the next invocation retries init)."""
        with self._lock:
            if self._closed:
                return
            for index, slot in enumerate(self._slots):
                if slot.state == "dead":
                    self._slots[index] = self._new_slot()

    def _slot_exited(self, slot: _Slot) -> None:
        """From the slot's log thread, after the container exited."""
        with self._lock:
            if self._closed or slot not in self._slots:
                return
            if slot.init_crashed:
                self.last_crash = list(slot.output)
            else:
                self._slots[self._slots.index(slot)] = self._new_slot()
        self.on_loop(self._fail_if_all_dead)

    def _fail_if_all_dead(self) -> None:
        with self._lock:
            if any(slot.state != "dead" for slot in self._slots) and not self._closed:
                return
            crash = list(self.last_crash)
        self._fail_queued(
            lambda job: ContainerCrashed(
                job.work.request_id, "the function's container crashed during init", crash
            )
        )

    def _fail_queued(self, error: Callable[[_Job], InvocationFailed]) -> None:
        jobs, self._pending = list(self._pending), deque()
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(error(job))

    def _environment(self, runtime_api: str) -> dict[str, str]:
        config = self.config
        env = {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python_qr_dev",
            "LAMBDA_TASK_ROOT": TASK_ROOT,
            "_HANDLER": config.handler,
        }
        env.update(config.environment)
        return env


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Slot:
    """One container, its Runtime API server and the invocation it is running."""

    def __init__(self, pool: ContainerPool, name: str) -> None:
        self.pool = pool
        self.name = name
        self.state: Literal["starting", "ready", "dead"] = "starting"
        self.started = threading.Event()
        self.init_crashed = False
        self.output: deque[str] = deque(maxlen=40)
        self.current: _Job | None = None
        self.history: deque[tuple[str, float, float | None]] = deque(maxlen=64)
        """Recent invocations: (request id, handed out, answered) in ``time.time()``."""
        self.container: Any = None
        self._stopping = False
        self._lock = threading.Lock()
        """Guards ``current`` and ``history`` (read by the log thread)."""
        self._send: Callable[[Work | None], bool] | None = None
        """Answers this container's waiting ``next`` (``RuntimeAPIServer``), while it waits."""
        config = pool.config
        default = "127.0.0.1" if config.network == "host" else "0.0.0.0"
        self.server = RuntimeAPIServer(self, config.listen or default, loop=pool.loop)

    def start(self) -> None:
        config = self.pool.config
        host = "127.0.0.1" if config.network == "host" else "host.docker.internal"
        self.server.start()
        options: dict[str, Any] = {
            "command": [config.handler],
            "name": self.name,
            "detach": True,
            "environment": self.pool._environment(f"{host}:{self.server.port}"),
            "network_mode": config.network,
            "volumes": {str(config.task_dir.resolve()): {"bind": TASK_ROOT, "mode": "ro"}},
            "labels": {**config.labels, POOL_LABEL: self.pool.id},
            "mem_limit": f"{config.memory_mb}m",
            "read_only": True,
            "tmpfs": {"/tmp": "rw,size=512m"},
        }
        if config.network == "bridge":
            options["extra_hosts"] = {"host.docker.internal": "host-gateway"}
        self.container = self.pool.client.containers.run(config.image, **options)
        threading.Thread(target=self._follow, name=f"{self.name}-logs", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self.pool.on_loop(self._wake)
        _quietly(self.container.remove, force=True)
        self.server.close()

    def _wake(self) -> None:
        """A ``next`` waiting on this container returns (stopping, or the container died)."""
        if self.pool._leave_idle(self):
            self._deliver(None)

    def _deliver(self, job: _Job | None) -> bool:
        """Hand ``job`` to the waiting ``next`` (``None``: stop waiting); ``False`` when no
        ``next`` waits here (or its connection is gone), so the job goes elsewhere."""
        send, self._send = self._send, None
        if send is None:
            return False
        if job is None:
            send(None)
            return True
        if not self._serving():  # being stopped: the job goes to another container
            send(None)
            self.pool._hand_out(job, first=True)
            return True
        with self._lock:
            self.current = job
            self.history.append((job.work.request_id, time.time(), None))
        if not send(job.work):
            with self._lock:
                self.current = None
                self.history.pop()
            return False
        job.timer = self.pool.loop.call_later(job.timeout, self._timed_out, job)
        return True

    # RuntimeBackend, called on the pool's loop
    def next_invocation(self, send: Callable[[Work | None], bool]) -> None:
        """The container asks for work: the oldest queued invocation now, else when one comes
        (``_hand_out`` calls ``_deliver`` from the submitting handler, in the same turn of the
        loop: the event is written to the container right away)."""
        with self._lock:
            self.current = None
            if self.state == "starting":
                self.state = "ready"
                self.started.set()
        pool = self.pool
        pool._leave_idle(self)  # a second connection's ``next`` replaces the first one's
        self._send = send
        if not self._serving():
            self._deliver(None)
            return
        while True:
            job = pool._take(self)
            if job is None:  # idle now: ``_deliver`` answers when work comes
                return
            if job.future.done():  # failed while queued
                continue
            if not self._deliver(job):  # the connection is gone
                pool._leave_idle(self)
                pool._hand_out(job, first=True)
            return

    def _serving(self) -> bool:
        return not self._stopping and self.state != "dead"

    def respond(self, request_id: str, payload: bytes) -> bool:
        job = self._finish(request_id)
        if job is None:
            return False
        if not job.future.done():
            job.future.set_result(payload)
        return True

    def fail(self, request_id: str, error: bytes, error_type: str) -> bool:
        job = self._finish(request_id)
        if job is None:
            return False
        if not job.future.done():
            job.future.set_exception(FunctionError(request_id, _error_body(error, error_type)))
        return True

    def init_failed(self, error: bytes, error_type: str) -> None:
        self.init_crashed = True
        body = _error_body(error, error_type)
        self.output.append(f"init error: {body.get('errorType')}: {body.get('errorMessage')}")

    def _finish(self, request_id: str) -> _Job | None:
        with self._lock:
            job = self.current
            if job is None or job.work.request_id != request_id:
                return None
            if self.history and self.history[-1][0] == request_id:
                self.history[-1] = (request_id, self.history[-1][1], time.time())
        if job.timer is not None:
            job.timer.cancel()
        return job

    def _timed_out(self, job: _Job) -> None:
        """On the loop, when ``job`` ran out of time: fail it and kill the container (Lambda
        resets the sandbox); the kill runs off the loop."""
        if job.future.done():
            return
        job.future.set_exception(
            FunctionTimeout(
                job.work.request_id, f"the function timed out after {job.timeout:g} seconds"
            )
        )
        self.pool.loop.run_in_executor(None, functools.partial(_quietly, self.container.kill))

    def _follow(self) -> None:
        """Stream the container's output until it exits, then report the exit.

        The engine's ``logs`` stream with timestamps: a line belongs to the invocation that was
        running when the engine read it, not when this thread gets to it (it may lag under load).
        A stream that ends while the container still runs (a busy engine) is opened again from
        the last line seen, so only a real exit counts as one.
        """
        pending: dict[Stream, str] = {"stdout": "", "stderr": ""}
        since = 0.0
        for _ in range(_FOLLOW_ATTEMPTS):
            since = self._stream(pending, since)
            if self._stopping or not self._running():
                break
        for stream, rest in pending.items():
            if rest:
                self._line(stream, rest, time.time())
        self._exited()

    def _stream(self, pending: dict[Stream, str], since: float) -> float:
        """Follow the logs from ``since``; returns the time of the last line seen."""
        api = self.pool.client.api
        params: dict[str, float] = {"follow": 1, "stdout": 1, "stderr": 1, "timestamps": 1}
        if since:
            params["since"] = since + 1e-6
        response = None
        try:
            url = api._url("/containers/{0}/logs", self.container.id)
            response = api._get(url, params=params, stream=True)
            api._raise_for_status(response)
            # A quiet container must not end the stream: no read timeout on this socket.
            api._disable_socket_timeout(api._get_raw_response_socket(response))
            for stream_id, chunk in _frames(response.raw):
                name: Stream = "stderr" if stream_id == _STDERR else "stdout"
                stamp, _, text = chunk.decode("utf-8", "replace").partition(" ")
                since = _epoch(stamp)
                # A line over the engine's buffer arrives in parts; only the last ends in "\n".
                text = pending[name] + text
                if not text.endswith("\n"):
                    pending[name] = text
                    continue
                pending[name] = ""
                self._line(name, text[:-1], since)
        except Exception as exc:  # the engine went away; report it as output
            self.output.append(f"(lost the container's output: {exc})")
        finally:
            if response is not None:
                _quietly(response.close)
        return since

    def _running(self) -> bool:
        try:
            self.container.reload()
        except Exception:  # removed meanwhile
            return False
        return str(self.container.status) in ("created", "running", "restarting")

    def _line(self, stream: Stream, text: str, at: float) -> None:
        if self._stopping:  # a container being removed says nothing worth showing
            return
        request_id = self._running_at(at)
        # The runtime interface client joins a record's lines with "\r" (one CloudWatch event).
        for part in text.rstrip("\r").split("\r"):
            self.output.append(part)
            self.pool.on_log(LogLine(self.name, request_id, stream, part))

    def _running_at(self, at: float) -> str | None:
        with self._lock:
            history = list(self.history)
        for request_id, began, ended in reversed(history):
            if began - _SLACK <= at and (ended is None or at <= ended + _LATE):
                return request_id
        return None

    def _exited(self) -> None:
        """From the log thread: the container is gone."""
        self.pool.on_loop(self._gone)
        if not self._stopping:
            self.server.close()
            _quietly(self.container.remove, force=True)
            self.pool._slot_exited(self)
        self.started.set()

    def _gone(self) -> None:
        """On the loop: no more work here; the invocation it was running failed."""
        with self._lock:
            was_starting = self.state == "starting"
            self.state = "dead"
            job, self.current = self.current, None
        self._wake()
        if was_starting and not self._stopping:
            self.init_crashed = True
        if job is not None and not job.future.done():
            if job.timer is not None:
                job.timer.cancel()
            job.future.set_exception(
                ContainerCrashed(
                    job.work.request_id,
                    "the function's container exited while running this invocation",
                    list(self.output),
                )
            )


_SLACK = 0.002
"""Seconds of tolerance between the engine's clock reading a line and ours (same machine)."""
_LATE = 0.5
"""The engine may read a line after the invocation has answered (a busy machine): a line up to
this long after the answer, before the next invocation began, still belongs to it."""


def _epoch(stamp: str) -> float:
    """The engine's RFC 3339 timestamp (nanoseconds, ``Z``) as seconds since the epoch."""
    try:
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
        return moment.timestamp() + float(f"0.{fraction or 0}")
    except ValueError:
        return time.time()


_STDERR = 2
_FOLLOW_ATTEMPTS = 20


def _frames(raw: Any) -> Iterator[tuple[int, bytes]]:
    """The engine's multiplexed log stream: an 8-byte header (stream, size) before each frame."""
    while True:
        header = raw.read(8)
        if len(header) < 8:
            return
        size = struct.unpack(">L", header[4:])[0]
        data = raw.read(size) if size else b""
        if size and not data:
            return
        yield header[0], data


def _quietly(action: Callable[..., object], **kwargs: Any) -> None:
    """Stop/remove calls race with the container exiting by itself: "already gone" is fine."""
    with contextlib.suppress(Exception):
        action(**kwargs)


def _error_body(error: bytes, error_type: str) -> dict[str, Any]:
    try:
        body = json.loads(error)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"errorMessage": error.decode("utf-8", "replace"), "errorType": error_type}
    body.setdefault("errorType", error_type)
    return body
