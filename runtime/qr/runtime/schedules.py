"""Schedule expressions: parse, normalise, compute the next run, translate to AWS.

Users write one of:

* a 5-field cron expression in UTC (``"0 9 * * 1-5"``), weekday 0 or 7 = Sunday as in cron;
* ``"rate(N minute|minutes|hour|hours|day|days)"``;
* a shorthand: ``hourly``, ``daily``, ``weekly``, ``monthly`` (also with a leading ``@``);
* ``never`` (the schedule exists but does not fire; ``qr dev schedule NAME`` still runs it).

Cron parsing and matching is cronsim's (no hand-written matcher); this module only normalises,
and translates to EventBridge's 6-field ``cron()`` where the weekday is 1 = Sunday and one of
day-of-month / day-of-week must be ``?``.

``parse_schedule`` is the one gate for ``qr dev`` (which fires schedules through cronsim) and
``qr build`` (which renders ``cron()``): a cron expression EventBridge would refuse at apply time
is refused here, so a schedule that runs locally also deploys. EventBridge's rules
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based, and the
field table in https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html):
day-of-month and day-of-week cannot both be restricted; ``L`` alone in day-of-month (qr does not
pass ``LW``, which AWS does not document); at most one ``#`` (nth weekday) or ``<day>L`` (last
weekday) term, alone, in day-of-week; and an increment no larger than its field's range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cronsim import CronSim, CronSimError

SHORTHANDS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
}
_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_FIELDS = (
    # name, number of values (a step must be smaller), what to write instead
    ("minute", 60, "rate(N minutes) or a list of minutes"),
    ("hour", 24, "rate(N hours) or a list of hours"),
    ("day-of-month", 31, "rate(N days) or a list of days"),
    ("month", 12, "a list of months"),
    ("day-of-week", 7, "a list of days"),
)


class ScheduleError(ValueError):
    """An expression that cannot be used; the message says why and what is accepted."""


@dataclass(frozen=True)
class ScheduleExpression:
    source: str
    kind: Literal["cron", "rate", "never"]
    cron: str | None = None
    rate_value: int | None = None
    rate_unit: str | None = None

    @property
    def normalized(self) -> str:
        if self.kind == "cron":
            assert self.cron is not None
            return self.cron
        if self.kind == "rate":
            return f"rate({self.rate_value} {self.rate_unit})"
        return "never"

    @property
    def rate_seconds(self) -> int | None:
        if self.kind != "rate" or self.rate_value is None or self.rate_unit is None:
            return None
        return self.rate_value * _UNIT_SECONDS[self.rate_unit.rstrip("s")]

    def next_run(self, after: datetime, *, started: datetime | None = None) -> datetime | None:
        """The first run strictly after ``after`` (UTC); rates count from ``started``."""
        after = after.astimezone(UTC)
        if self.kind == "never":
            return None
        if self.kind == "rate":
            period = timedelta(seconds=self.rate_seconds or 0)
            origin = (started or after).astimezone(UTC)
            if after < origin:
                return origin + period
            steps = int((after - origin) / period) + 1
            return origin + steps * period
        assert self.cron is not None
        # cronsim yields times >= start with second precision; step past `after` itself.
        return next(iter(CronSim(self.cron, after.replace(microsecond=0) + timedelta(seconds=1))))

    def aws_expression(self) -> str | None:
        """The EventBridge Scheduler expression, or ``None`` for ``never``."""
        if self.kind == "never":
            return None
        if self.kind == "rate":
            return self.normalized
        assert self.cron is not None
        minute, hour, dom, month, dow = self.cron.split()
        _check_aws(self.cron)  # parse_schedule already did; a hand-built expression may not have
        if dow == "*":
            return f"cron({minute} {hour} {dom} {month} ? *)"
        return f"cron({minute} {hour} ? {month} {_aws_weekdays(dow)} *)"


def parse_schedule(expression: object) -> ScheduleExpression:
    if not isinstance(expression, str):
        raise ScheduleError(f"schedule must be a string, got {type(expression).__name__}")
    source = expression
    text = " ".join(expression.strip().split())
    lowered = text.lower().removeprefix("@")
    if lowered == "never":
        return ScheduleExpression(source, "never")
    if lowered in SHORTHANDS:
        return ScheduleExpression(source, "cron", cron=SHORTHANDS[lowered])
    if lowered.startswith("rate"):
        match = _RATE_RE.match(lowered)
        if not match:
            raise ScheduleError(
                f"{source!r} is not a valid rate; write rate(N minutes), rate(N hours) or rate(N days)"
            )
        value, unit = int(match.group(1)), match.group(2).rstrip("s")
        if value < 1:
            raise ScheduleError(f"{source!r}: a rate must be at least 1")
        return ScheduleExpression(
            source, "rate", rate_value=value, rate_unit=unit if value == 1 else unit + "s"
        )
    if lowered.startswith("cron("):
        raise ScheduleError(
            f"{source!r} is an AWS cron(); write the 5-field cron instead (minute hour day month weekday), "
            "qr translates it for AWS"
        )
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"{source!r} has {len(fields)} fields; a cron expression has 5: minute hour day-of-month "
            "month day-of-week (UTC), e.g. '0 9 * * 1-5'. Or use rate(15 minutes), hourly, daily, weekly, never"
        )
    cron = " ".join(fields).upper()
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(f"{source!r} is not a valid cron expression: {exc}") from None
    try:
        _check_aws(cron)
    except ScheduleError as exc:
        raise ScheduleError(f"{source!r}: {exc}") from None
    return ScheduleExpression(source, "cron", cron=cron)


def _check_aws(cron: str) -> None:
    """Raise ``ScheduleError`` for a cron expression (valid for cronsim) that EventBridge refuses."""
    fields = cron.split()
    dom, dow = fields[2], fields[4]
    if dom != "*" and dow != "*":
        raise ScheduleError(
            "it restricts both day-of-month and day-of-week; cron runs when either matches, but "
            "AWS cron() cannot express that (one of the two must be '?'). Use two schedule files, "
            "one per field"
        )
    for (name, size, instead), field in zip(_FIELDS, fields, strict=True):
        for term in field.split(","):
            _, _, step = term.partition("/")
            if step and int(step) >= size:
                raise ScheduleError(
                    f"the step /{step} in the {name} field is not smaller than the field's "
                    f"{size} values, which AWS cron() refuses; use {instead}"
                )
    if "L" in dom and dom != "L":
        raise ScheduleError(
            f"day-of-month {dom!r}: AWS cron() takes 'L' (the last day of the month) only on its "
            "own, and qr does not pass 'LW'; use 'L' alone or list the days"
        )
    terms = dow.split(",")
    special = [t for t in terms if "#" in t or t.endswith("L")]
    if special and len(terms) > 1:
        raise ScheduleError(
            f"day-of-week {dow!r}: AWS cron() allows one '#' (nth weekday) or 'L' (last weekday) "
            "term, on its own in the field; use one schedule file per term"
        )


def _aws_weekdays(field: str) -> str:
    """cron's day-of-week (0/7 = Sunday) -> AWS's (1 = Sunday), keeping names as they are."""
    parts: list[str] = []
    for token in field.split(","):
        parts.extend(_aws_weekday_token(token))
    return ",".join(dict.fromkeys(parts))


def _day(token: str) -> int:
    return _DAY_NAMES.index(token) if token in _DAY_NAMES else int(token) % 7


def _aws_weekday_token(token: str) -> list[str]:
    if "#" in token:
        day, nth = token.split("#")
        return [f"{_day(day) + 1}#{nth}"]
    if token.endswith("L") and token != "L":
        return [f"{_day(token[:-1]) + 1}L"]
    base, _, step_text = token.partition("/")
    step = int(step_text) if step_text else 1
    if base == "*":
        first, last = 0, 6
    elif "-" in base:
        start, end = base.split("-")
        first, last = _day(start), _day(end)
        if end == "7":  # cron allows 7 for Sunday at the end of a range (5-7)
            last = 7
    else:
        first = last = _day(base)
        if step_text:
            last = 6
    # cronsim has already rejected wrapping ranges such as FRI-MON, so first <= last here.
    aws = sorted({d % 7 + 1 for d in range(first, last + 1, step)})
    return _compact(aws)


def _compact(days: list[int]) -> list[str]:
    """[2, 3, 4, 5, 6] -> ["2-6"]; [1, 7] -> ["1", "7"]."""
    out: list[str] = []
    run: list[int] = []
    for day in [*days, 99]:
        if run and day == run[-1] + 1:
            run.append(day)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
        run = [day]
    return out
