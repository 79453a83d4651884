"""``qr logs``: the function's CloudWatch Logs, once or followed.

Two sources of the same ``LogEvent``s:

* ``Poller`` - ``FilterLogEvents`` over every page from a start time. Followed, each poll starts a
  little (``overlap``) before the newest event seen, or before the local time when that is
  earlier: CloudWatch can deliver an event after later ones, and it accepts timestamps up to two
  hours ahead, so one line from a fast clock must not move the window past the lines stamped now.
  The window widens to twice the longest delay seen between a line's timestamp and its arrival
  (``ingestionTime``), up to ``max_overlap``: lines that came late once may come later still.
  Events already shown are recognised by id (remembered while they are inside the window), so
  nothing is printed twice and a late event is not skipped. Throttling doubles the wait (up to
  ``max_delay``) instead of failing.
* ``live_tail`` - ``StartLiveTail``, an HTTP/2 event stream of ``sessionStart`` / ``sessionUpdate``
  frames (``events_from_stream`` reads the decoded frames), reopened when a session times out. Where
  the account, the endpoint or the SDK cannot do it, ``follow`` says why and falls back to polling.

``render`` prints one line per event: qr's JSON log lines (``level``, ``message``, ``request_id``,
``handler``, ``error``) and Lambda's own JSON format by level with the request/job id; plain lines
(``START``/``END``/``REPORT``) as they are.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
from rich.text import Text

from qr.cli.console import Output
from qr.cli.deploy.aws import aws_errors, error_code
from qr.cli.errors import QrError

_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``90s``, ``1w`` (a bare number means minutes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if match is None or int(match.group(1)) == 0:
        raise QrError(
            f"--since {text!r} is not a duration",
            "Use a number with a unit: 90s, 30m, 2h, 1d or 1w.",
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "m"])


def filter_pattern(text: str | None) -> str | None:
    """A CloudWatch filter pattern: plain text becomes an exact phrase; patterns stay as written."""
    if not text:
        return None
    if text[0] in '{["?%' or re.fullmatch(r"[A-Za-z0-9_]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class LogEvent:
    timestamp: int
    """Milliseconds since the epoch."""
    message: str
    stream: str = ""
    event_id: str = ""


class Poller:
    """``FilterLogEvents`` from a start time; ``follow`` polls forever without duplicates or gaps."""

    def __init__(
        self,
        client: Any,
        group: str,
        *,
        start_ms: int,
        pattern: str | None = None,
        interval: float = 2.0,
        overlap_ms: int = 60_000,
        max_overlap_ms: int = 900_000,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.group = group
        self.start_ms = start_ms
        self.pattern = pattern
        self.interval = interval
        self.overlap_ms = overlap_ms
        self.max_overlap_ms = max_overlap_ms
        self.lateness_ms = 0
        """The longest delay seen between an event's timestamp and its ingestion."""
        self.max_delay = max_delay
        self.sleep = sleep
        self.clock = clock
        self.newest = start_ms
        self._seen: dict[str, int] = {}
        self.throttled = 0

    def window_start(self) -> int:
        """Where the next poll starts: ``overlap`` (or twice the longest lateness seen, up to
        ``max_overlap``) before the newest event seen or the local time, whichever is earlier;
        never before ``start_ms``."""
        now = int(self.clock() * 1000)
        overlap = max(self.overlap_ms, min(self.max_overlap_ms, 2 * self.lateness_ms))
        return max(self.start_ms, min(self.newest, now) - overlap)

    def fetch(self) -> list[LogEvent]:
        """Every event not returned before, from ``window_start()`` on, oldest first."""
        start = self.window_start()
        request: dict[str, Any] = {"logGroupName": self.group, "startTime": start}
        if self.pattern:
            request["filterPattern"] = self.pattern
        found: list[LogEvent] = []
        with aws_errors(f"reading log group {self.group}"):
            while True:
                page = self._call(request)
                for item in page.get("events", []):
                    event = LogEvent(
                        timestamp=int(item["timestamp"]),
                        message=str(item.get("message", "")),
                        stream=str(item.get("logStreamName", "")),
                        event_id=str(item.get("eventId", "")),
                    )
                    if event.event_id in self._seen:
                        continue
                    self._seen[event.event_id] = event.timestamp
                    found.append(event)
                    if "ingestionTime" in item:
                        late = int(item["ingestionTime"]) - event.timestamp
                        self.lateness_ms = max(self.lateness_ms, late)
                token = page.get("nextToken")
                if not token:
                    break
                request["nextToken"] = token
        if found:
            self.newest = max(self.newest, *(e.timestamp for e in found))
        # the next poll cannot return what is before its start: forget those ids
        horizon = self.window_start()
        self._seen = {k: ts for k, ts in self._seen.items() if ts >= horizon}
        return sorted(found, key=lambda e: (e.timestamp, e.event_id))

    def _call(self, request: dict[str, Any]) -> Any:
        delay = self.interval
        while True:
            try:
                return self.client.filter_log_events(**request)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise QrError(
                        f"log group {self.group} does not exist",
                        "The function has not logged anything yet, or the stage is not "
                        "deployed: run qr deploy (check --stage and the region in qr.yaml).",
                    ) from None
                if error_code(exc) not in _THROTTLED:
                    raise
                self.throttled += 1
                self.sleep(delay)
                delay = min(self.max_delay, delay * 2)

    def follow(self) -> Iterator[LogEvent]:
        while True:
            yield from self.fetch()
            self.sleep(self.interval)


def events_from_stream(stream: Iterable[dict[str, Any]]) -> Iterator[LogEvent]:
    """``LogEvent``s from the decoded frames of a StartLiveTail response stream."""
    for frame in stream:
        update = frame.get("sessionUpdate")
        if not update:
            continue
        for result in update.get("sessionResults", []):
            yield LogEvent(
                timestamp=int(result.get("timestamp", 0)),
                message=str(result.get("message", "")),
                stream=str(result.get("logStreamName", "")),
            )


class LiveTailUnavailable(Exception):
    """StartLiveTail cannot be used here; the message says why."""


def live_tail(client: Any, group_arn: str, pattern: str | None) -> Iterator[LogEvent]:
    """Follow with StartLiveTail, reopening the session when it times out (after 3 hours)."""
    while True:
        request: dict[str, Any] = {"logGroupIdentifiers": [group_arn]}
        if pattern:
            request["logEventFilterPattern"] = pattern
        try:
            response = client.start_live_tail(**request)
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ClientError,
            botocore.exceptions.UnknownServiceError,
            AttributeError,  # an SDK without the operation
        ) as exc:
            raise LiveTailUnavailable(str(exc).splitlines()[0][:200]) from None
        try:
            yield from events_from_stream(response["responseStream"])
        except botocore.exceptions.EventStreamError as exc:
            if error_code(exc) != "SessionTimeoutException":
                raise LiveTailUnavailable(str(exc)[:200]) from None


def group_arn(client: Any, group: str) -> str:
    with aws_errors(f"looking up log group {group}"):
        groups = client.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
    for item in groups:
        if item.get("logGroupName") == group:
            return str(item.get("logGroupArn") or str(item["arn"]).removesuffix(":*"))
    raise QrError(
        f"log group {group} does not exist",
        "The function has not logged anything yet, or the stage is not deployed: run qr deploy "
        "(check --stage and the region in qr.yaml).",
    )


def follow(
    client: Any,
    group: str,
    *,
    start_ms: int,
    pattern: str | None,
    out: Output,
    live: bool = True,
    poller: Poller | None = None,
) -> Iterator[LogEvent]:
    """Live tail where it works, else polling; events from ``start_ms`` are shown first."""
    poller = poller or Poller(client, group, start_ms=start_ms, pattern=pattern)
    yield from poller.fetch()
    if live:
        arn = group_arn(client, group)
        try:
            yield from live_tail(client, arn, pattern)
        except LiveTailUnavailable as exc:
            out.line(f"(live tail unavailable: {exc}; polling every {poller.interval:g}s)")
    yield from poller.follow()


_LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "cyan",
    "WARNING": "yellow",
    "WARN": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
    "FATAL": "bold red",
}


def render(event: LogEvent, out: Output) -> None:
    """One line per event: time, level, request/job id, message (and an error's traceback)."""
    when = datetime.fromtimestamp(event.timestamp / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    data = _json(event.message)
    if data is None:
        text = event.message.rstrip("\n")
        if out.rich:
            style = "dim" if re.match(r"(START|END|REPORT|INIT_START) ", text) else ""
            out.console.print(f"[dim]{when}[/dim]", _markup_free(text, style))
        else:
            out.line(f"{when} {text}")
        return
    level = str(data.get("level") or data.get("severity") or "INFO").upper()
    message = str(data.get("message", data.get("msg", "")))
    if message == "" and data.get("type"):  # Lambda platform events in JSON log format
        message = f"{data['type']} {json.dumps(data.get('record', {}), separators=(',', ':'))}"
    request = data.get("request_id") or data.get("requestId") or data.get("job_id")
    where = f" [{request}]" if request else ""
    handler = f" ({data['handler']})" if data.get("handler") else ""
    if out.rich:
        style = _LEVEL_STYLE.get(level, "")
        out.console.print(
            f"[dim]{when}[/dim]",
            _markup_free(f"{level:<7}", style),
            _markup_free(f"{where.strip()}{handler}".strip(), "magenta"),
            _markup_free(message, ""),
        )
    else:
        out.line(f"{when} {level:<7}{where}{handler} {message}")
    if data.get("error"):
        for row in str(data["error"]).rstrip().splitlines():
            out.line(f"    {row}")


def _json(message: str) -> dict[str, Any] | None:
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _markup_free(text: str, style: str) -> Text:
    return Text(text, style=style)
