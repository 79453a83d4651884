"""The producer API: ``queues["name"].push(payload)`` from any handler.

``queues`` is this module itself (its class is swapped for ``Queues`` below so that
``queues["screenshots"]`` works whichever way it was imported: ``from qr.runtime import queues``
or ``import qr.runtime.queues``). Handles are lazy: ``queues["x"]`` and ``queues.self()`` are
usually evaluated while a handler module is being loaded, before any platform exists, so the
queue name is checked against the platform's known queues when a job is pushed.

A push:

1. validates what SQS would reject (limits below, checked against the SQS API reference in
   botocore 1.44 and the SQS Developer Guide, 2026-11): a FIFO push needs a group, takes no
   per-message delay, a delay is 0-900 s, the encoded message is at most 1 MiB;
2. validates the payload as the queue's model when its handler is typed
   (``def handler(payload: Order)``, ``qr.runtime.payloads``) and sends the model's JSON form;
3. encodes the payload (``encode_payload``): a JSON-serialisable object (a dataclass or pydantic
   model instance as its JSON form) becomes JSON text
   (``application/json``), ``str`` stays text (``text/plain; charset=utf-8``), ``bytes`` becomes
   base64 (``application/octet-stream``); ``decode_payload`` gives back the same type;
4. adds the pushing user's id (``qr.runtime.context``) and hands an ``OutgoingJob`` to the
   platform's ``QueuePort``, which returns the job id (the original id for a FIFO duplicate).

Every error is a ``QueueError`` naming the caller's file and line and saying how to fix it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any, cast

from qr.runtime import payloads
from qr.runtime._suggest import did_you_mean
from qr.runtime.chains import Step
from qr.runtime.context import current
from qr.runtime.ports import NoPlatformError, OutgoingJob, Platform, get_platform

# SQS limits (SQS API reference in botocore 1.44.5, 2026-11; SQS Developer Guide).
MAX_MESSAGE_BYTES = 1_048_576
"""Body plus message attribute names, types and values (SendMessage, "1 MiB")."""
MAX_DELAY_SECONDS = 900
"""Per-message DelaySeconds (standard queues only)."""
DEDUPE_WINDOW_SECONDS = 300
"""FIFO deduplication interval, kept after the message is deleted."""
MAX_VISIBILITY_SECONDS = 43_200
"""Visibility timeout ceiling (12 h), counted from the receive."""
MAX_ID_LENGTH = 128
"""MessageGroupId / MessageDeduplicationId length."""
MAX_DEBOUNCE_KEY = 512
"""Debounce keys travel as a message attribute and in a DynamoDB key (at most 2,048 bytes)."""

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
CONTENT_TYPES = (JSON, TEXT, BINARY)

# Characters SQS accepts in a message body (anything else is InvalidMessageContents).
_INVALID_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# MessageGroupId / MessageDeduplicationId: alphanumerics and punctuation.
_ID_RE = re.compile(r"^[!-~]{1,128}$")


class QueueError(ValueError):
    """A push SQS would refuse, or a queue that does not exist."""

    def __init__(self, message: str, hint: str = "") -> None:
        where = _caller_location()
        text = f"{where}: {message}" if where else message
        super().__init__(f"{text}\n  fix: {hint}" if hint else text)
        self.message = message
        self.hint = hint
        self.where = where


def encode_payload(payload: object) -> tuple[str, str]:
    """``payload`` -> ``(body, content_type)`` per the shared queue message encoding."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(payload)).decode("ascii"), BINARY
    payload = payloads.jsonable(payload)
    if isinstance(payload, str):
        bad = _INVALID_CHARS.search(payload)
        if bad:
            raise QueueError(
                f"the payload text contains the character {bad.group()!r} at index {bad.start()}, "
                "which SQS does not accept in a message",
                "push bytes instead (payload.encode()), or a JSON object",
            )
        return payload, TEXT
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise QueueError(
            f"the payload ({type(payload).__name__}) cannot be sent: it is not JSON-serialisable "
            f"({exc})",
            "push a dict/list/str/number/bool/None made of JSON types, a dataclass or pydantic "
            "model, a str or bytes (convert datetimes with .isoformat())",
        ) from None
    if _INVALID_CHARS.search(body):
        # Lone surrogates survive json.dumps(ensure_ascii=False); escape everything instead.
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return body, JSON


def decode_payload(body: str, content_type: str | None) -> Any:
    """The inverse of ``encode_payload`` (a missing content type means JSON, else text)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == BINARY:
        try:
            return base64.b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"job body is not valid base64 ({exc})") from None
    if kind == "text/plain":
        return body
    if kind == JSON or not kind:
        try:
            return json.loads(body)
        except ValueError:
            if kind:
                raise ValueError("job body is not valid JSON") from None
            return body
    raise ValueError(
        f"unknown job content type {content_type!r} (known: {', '.join(CONTENT_TYPES)})"
    )


def message_size(job: OutgoingJob) -> int:
    """Bytes SQS counts: the body plus each message attribute's name, type and value."""
    size = len(job.body.encode("utf-8", "surrogatepass"))
    attributes = {"content_type": job.content_type}
    if job.user_id is not None:
        attributes["user_id"] = job.user_id
    for key, value in job.params.items():
        attributes[f"param_{key}"] = value
    if job.debounce_key is not None:  # the AWS adapter adds the key and its version
        attributes["qr_debounce"] = job.debounce_key
        attributes["qr_debounce_version"] = "9" * 20
    for name, value in attributes.items():
        size += len(name.encode()) + len(b"String") + len(value.encode("utf-8", "surrogatepass"))
    return size


@dataclass(frozen=True)
class Queue:
    """A handle on one queue; ``group``/``dedupe`` return new handles (FIFO)."""

    name: str
    group_id: str | None = None
    dedupe_id: str | None = None
    debounce_key: str | None = None
    debounce_seconds: float = 0

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    def group(self, group_id: object) -> Queue:
        """The FIFO message group: jobs of one group run one at a time, in push order."""
        value = _id(group_id, "group id")
        return replace(self, group_id=value)

    def debounce(self, key: object, seconds: float) -> Queue:
        """Trailing-edge debounce: of the pushes with this ``key``, only the last one runs, once,
        ``seconds`` after it (at most 900 s, the SQS message delay limit)."""
        if self.fifo:
            raise QueueError(
                f"debounce() is for standard queues and {self.name!r} is a FIFO queue (SQS has "
                "no per-message delay on FIFO queues)",
                "debounce onto a standard queue, or use .dedupe(id) for FIFO duplicates",
            )
        if not isinstance(key, str) or not key or len(key) > MAX_DEBOUNCE_KEY:
            raise QueueError(
                f"a debounce key must be a non-empty string of at most {MAX_DEBOUNCE_KEY} "
                f"characters, got {key!r}",
                'use an id that names what is being debounced, e.g. f"user-{user_id}"',
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_DELAY_SECONDS
        ):
            raise QueueError(
                f"debounce seconds must be above 0 and at most {MAX_DELAY_SECONDS} (15 minutes, "
                f"the SQS message delay limit that carries the debounce window), got {seconds!r}",
                "use a shorter window, or a schedule for longer ones",
            )
        return replace(self, debounce_key=key, debounce_seconds=float(seconds))

    def dedupe(self, dedupe_id: object) -> Queue:
        """The FIFO deduplication id (default: SHA-256 of the body), remembered for 5 minutes."""
        if not self.fifo:
            raise QueueError(
                f"dedupe() is for FIFO queues and {self.name!r} is a standard queue",
                "rename the file to queues/<name>.fifo.py for FIFO semantics, or drop .dedupe()",
            )
        value = _id(dedupe_id, "dedupe id")
        return replace(self, dedupe_id=value)

    def push(
        self, payload: object, delay: float = 0, *, params: Mapping[str, str] | None = None
    ) -> str:
        """Enqueue ``payload``; returns the job id (the original job's id for a FIFO duplicate)."""
        platform = self._check_name("push()")
        job = self.prepare(payload, delay, params=params)
        return platform.queues.send(job)

    def _check_name(self, what: str) -> Platform:
        try:
            platform = get_platform(f"queues[{self.name!r}].{what}")
        except NoPlatformError as exc:
            raise QueueError(str(exc)) from None
        known = platform.queue_names
        if known is not None and self.name not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise QueueError(
                f"there is no queue named {self.name!r}.{did_you_mean(self.name, known)}",
                f"create queues/{self.name}.py with a handler, or use a known queue: {listing}",
            )
        return platform

    def prepare(
        self, payload: object, delay: float = 0, *, params: Mapping[str, str] | None = None
    ) -> OutgoingJob:
        """Validate and encode a push without sending it (what ``push`` hands to the port)."""
        if self.fifo and self.group_id is None:
            raise QueueError(
                f"a push to the FIFO queue {self.name!r} needs a message group",
                f'use queues["{self.name}"].group(some_id).push(payload); jobs of one group run '
                "one at a time in order (e.g. group by user id)",
            )
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay != delay:
            raise QueueError(f"delay must be a number of seconds, got {delay!r}")
        if delay and self.fifo:
            raise QueueError(
                f"FIFO queue {self.name!r} cannot delay a single job (SQS allows no per-message "
                "delay on FIFO queues)",
                "push without delay=, or use a standard queue for delayed jobs",
            )
        if self.debounce_key is not None:
            if delay:
                raise QueueError(
                    "a debounced push takes no delay= (the debounce window is the delay)",
                    "drop delay=, or push without .debounce()",
                )
            delay = self.debounce_seconds
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            raise QueueError(
                f"delay must be from 0 to {MAX_DELAY_SECONDS} seconds (15 minutes, the SQS "
                f"limit), got {delay}",
                "for longer waits push again from a job, or use a schedule",
            )
        model = payloads.for_queue(self.name)
        if model is not None:
            try:
                payload = model.dump(model.validate(payload))
            except payloads.PayloadError as exc:
                raise QueueError(
                    f"queue {self.name!r} takes {model.name} payloads and this one does not "
                    f"validate: {exc.detail}",
                    f"push a {model.name}(...) or data that validates as one (see the handler's "
                    "payload annotation)",
                ) from None
        body, content_type = encode_payload(payload)
        invocation = current()
        job = OutgoingJob(
            queue=self.name,
            body=body,
            content_type=content_type,
            group_id=self.group_id,
            dedupe_id=self.dedupe_id,
            delay=float(delay),
            user_id=invocation.user_id if invocation is not None else None,
            params={str(k): str(v) for k, v in (params or {}).items()},
            debounce_key=self.debounce_key,
        )
        size = message_size(job)
        if size > MAX_MESSAGE_BYTES:
            raise QueueError(
                f"the job is {size:,} bytes encoded, over the SQS limit of {MAX_MESSAGE_BYTES:,} "
                "bytes (1 MiB)",
                "store large data elsewhere (a database, S3) and push its key instead",
            )
        return job

    def after(self, payload: object, delay: float = 0) -> Step:
        """The next step of a chain: return it from a queue handler (or a list of them) and it is
        pushed once this job succeeded, never twice (``qr.runtime.chains``)."""
        self._check_name("after()")
        return Step(self.prepare(payload, delay))

    @property
    def http(self) -> Callable[..., Any]:
        """An HTTP handler that pushes the request body: ``post = queues["tasks"].http``.

        Answers 202 with the job id in ``X-Job-Id`` (and ``{"job_id": ...}``), plus
        ``Location: /_jobs/{id}`` when the queue sets ``config["status_route"]``. For a FIFO queue
        the route must have a ``[group]`` path parameter and may have ``[dedupe]``.
        """
        return _http_handler(self)


def _http_handler(queue: Queue) -> Callable[..., Any]:
    def push_request(body: Any, params: Mapping[str, Any]) -> Any:
        from qr.runtime.errors import HTTPError  # the HTTP runtime is loaded by now
        from qr.runtime.http.responses import Response

        target = queue
        if queue.fifo:
            group = params.get("group")
            if group is None:
                raise HTTPError(
                    500,
                    f"{queue.name}.http needs a [group] path parameter in the route's file name "
                    "(e.g. api/orders/[group].py)",
                )
            target = target.group(group)
            if params.get("dedupe") is not None:
                target = target.dedupe(params["dedupe"])
        extra = {k: str(v) for k, v in params.items() if k not in ("group", "dedupe")}
        if hasattr(body, "multi_items"):  # a form: push its fields as a dict
            body = {k: v for k, v in body.items() if isinstance(v, str)}
        try:
            job_id = target.push(body, params=extra)
        except QueueError as exc:
            status = 413 if "bytes encoded" in exc.message else 400
            raise HTTPError(status, exc.message) from None
        headers = {"X-Job-Id": job_id}
        if queue.name in get_platform().status_queues:
            headers["Location"] = f"/_jobs/{job_id}"
        return Response.json({"job_id": job_id}, status=202, headers=headers)

    push_request.__qualname__ = f"queues[{queue.name!r}].http"
    return push_request


def _id(value: object, what: str) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not _ID_RE.match(text):
        raise QueueError(
            f"{what} must be 1-{MAX_ID_LENGTH} letters, digits or punctuation (no spaces), "
            f"got {value!r}",
            "use an id such as a user id or order id",
        )
    return text


def _caller_location() -> str:
    """``file:line`` of the innermost frame outside qr (the user's push), or ``""``."""
    for frame in reversed(traceback.extract_stack()):
        if "/qr/runtime/" not in frame.filename and "/qr/cli/" not in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    return ""


def queue_name_of(file: str) -> str | None:
    """``queues/emails.py`` (relative, or an absolute path) -> ``"emails"``; else ``None``."""
    path = PurePosixPath(file.replace("\\", "/"))
    if path.parent.name != "queues" or path.suffix != ".py":
        return None
    return path.name.removesuffix(".py")


class Queues(ModuleType):
    """The type of this module: ``queues["name"]`` and ``queues.self()``."""

    def __getitem__(self, name: str) -> Queue:
        if not isinstance(name, str):
            raise QueueError(f"queue names are strings, got {name!r}")
        return Queue(name)

    def self(self) -> Queue:
        """The queue of the calling file (``queue = queues.self()`` in ``queues/emails.py``)."""
        frame = sys._getframe(1)
        globals_ = frame.f_globals
        file = globals_.get("__qr_file__") or globals_.get("__file__") or ""
        name = queue_name_of(str(file))
        if name is None:
            raise QueueError(
                f"queues.self() is only for files in queues/, and this is {file or 'unknown'}",
                'name the queue instead: queues["emails"]',
            )
        return Queue(name)


sys.modules[__name__].__class__ = Queues
queues = cast(Queues, sys.modules[__name__])
"""``from qr.runtime import queues``: this module, subscriptable."""
