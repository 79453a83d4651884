from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from qr.runtime.schedules import ScheduleError, parse_schedule

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("source", "normalized", "aws"),
    [
        ("0 9 * * 1-5", "0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"),
        ("0 0 * * 0", "0 0 * * 0", "cron(0 0 ? * 1 *)"),
        ("0 0 * * 7", "0 0 * * 7", "cron(0 0 ? * 1 *)"),
        ("0 0 * * 5-7", "0 0 * * 5-7", "cron(0 0 ? * 1,6,7 *)"),
        ("0 0 * * 1,3,5", "0 0 * * 1,3,5", "cron(0 0 ? * 2,4,6 *)"),
        ("0 0 * * */2", "0 0 * * */2", "cron(0 0 ? * 1,3,5,7 *)"),
        ("0 0 * * mon-fri", "0 0 * * MON-FRI", "cron(0 0 ? * 2-6 *)"),
        ("0 0 * * 3#2", "0 0 * * 3#2", "cron(0 0 ? * 4#2 *)"),
        ("*/15 * * * *", "*/15 * * * *", "cron(*/15 * * * ? *)"),
        ("0 12 1 * *", "0 12 1 * *", "cron(0 12 1 * ? *)"),
        ("  0   9 * *  1 ", "0 9 * * 1", "cron(0 9 ? * 2 *)"),
        ("hourly", "0 * * * *", "cron(0 * * * ? *)"),
        ("@daily", "0 0 * * *", "cron(0 0 * * ? *)"),
        ("weekly", "0 0 * * 0", "cron(0 0 ? * 1 *)"),
        ("rate(1 minutes)", "rate(1 minute)", "rate(1 minute)"),
        ("rate(15 minute)", "rate(15 minutes)", "rate(15 minutes)"),
        ("rate(2 days)", "rate(2 days)", "rate(2 days)"),
        ("never", "never", None),
    ],
)
def test_normalise_and_translate(source: str, normalized: str, aws: str | None) -> None:
    expression = parse_schedule(source)
    assert expression.normalized == normalized
    assert expression.aws_expression() == aws


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("61 * * * *", "not a valid cron"),
        ("0 0 * * FRI-MON", "not a valid cron"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(5 weeks)", "not a valid rate"),
        ("cron(0 9 * * ? *)", "AWS cron()"),
        ("sometimes", "has 1 fields"),
    ],
)
def test_invalid(source: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_schedule(source)


def test_not_a_string() -> None:
    with pytest.raises(ScheduleError, match="must be a string"):
        parse_schedule(5)


def test_both_day_fields_cannot_go_to_aws() -> None:
    with pytest.raises(ScheduleError, match="two schedule files"):
        parse_schedule("0 0 1 * 1")
    with pytest.raises(ScheduleError, match="two schedule files"):
        parse_schedule("0 0 */2 * MON")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # EventBridge takes one nth-weekday term; cron's list used to become "2#1,6#3"
        ("0 9 * * 1#1,5#3", "allows one '#' (nth weekday) or 'L' (last weekday) term"),
        ("0 9 * * 1#1,3", "on its own in the field"),
        ("0 9 * * 5L,1", "on its own in the field"),
        ("*/90 * * * *", "the step /90 in the minute field is not smaller than the field's 60"),
        ("0 */30 * * *", "the step /30 in the hour field is not smaller than the field's 24"),
        ("0 0-23/24 * * *", "/24 in the hour field"),
        ("0 0 */31 * *", "/31 in the day-of-month field"),
        ("0 0 1 */12 *", "/12 in the month field"),
        ("0 0 * * */7", "/7 in the day-of-week field"),
        ("0 0 LW * *", "does not pass 'LW'"),
        ("0 0 1,L * *", "takes 'L' (the last day of the month) only on its own"),
    ],
)
def test_what_eventbridge_refuses_is_refused_at_parse(source: str, message: str) -> None:
    """The parser is shared by qr dev's scheduler and the Terraform model: an expression AWS
    would refuse at apply time never parses, so it fails the same way in both."""
    with pytest.raises(ScheduleError, match=re.escape(message)) as info:
        parse_schedule(source)
    assert str(info.value).startswith(repr(source))


@pytest.mark.parametrize(
    ("source", "aws"),
    [
        ("0 9 * * 1#1", "cron(0 9 ? * 2#1 *)"),
        ("0 9 * * 5L", "cron(0 9 ? * 6L *)"),
        ("0 0 L * *", "cron(0 0 L * ? *)"),
        ("*/59 * * * *", "cron(*/59 * * * ? *)"),
        ("0 */23 * * *", "cron(0 */23 * * ? *)"),
        ("0 0 */30 * *", "cron(0 0 */30 * ? *)"),
        ("0 0 1 */11 *", "cron(0 0 1 */11 ? *)"),
        ("0 0 * * */6", "cron(0 0 ? * 1,7 *)"),
    ],
)
def test_edges_eventbridge_accepts(source: str, aws: str) -> None:
    assert parse_schedule(source).aws_expression() == aws


def test_next_run_cron_weekday_sunday() -> None:
    assert parse_schedule("0 0 * * 0").next_run(MONDAY_10) == datetime(2026, 11, 29, tzinfo=UTC)
    assert parse_schedule("0 9 * * 1-5").next_run(MONDAY_10) == datetime(
        2026, 11, 24, 9, tzinfo=UTC
    )


def test_next_run_is_strictly_after() -> None:
    at_nine = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert parse_schedule("0 9 * * *").next_run(at_nine) == datetime(2026, 11, 24, 9, tzinfo=UTC)


def test_next_run_rate_counts_from_start() -> None:
    expression = parse_schedule("rate(15 minutes)")
    started = datetime(2026, 11, 23, 9, 50, tzinfo=UTC)
    assert expression.next_run(MONDAY_10, started=started) == datetime(
        2026, 11, 23, 10, 5, tzinfo=UTC
    )
    assert expression.rate_seconds == 900


def test_never_has_no_next_run() -> None:
    assert parse_schedule("never").next_run(MONDAY_10) is None
