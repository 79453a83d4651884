"""qr logs against CloudWatch Logs in a moto server (which has no live tail: the fallback runs)."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from qr.cli.console import Output
from qr.cli.deploy import logs
from qr.cli.deploy.aws import Aws
from qr.cli.errors import QrError
from tests.integration.deploy.conftest import interrupt_qr, run_qr

pytestmark = pytest.mark.integration

GROUP = "/aws/lambda/app-production"


def put(aws: Aws, *events: tuple[int, str], stream: str = "s1") -> None:
    client = aws.client("logs")
    with contextlib.suppress(botocore.exceptions.ClientError):
        client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    client.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": ts, "message": message} for ts, message in events],
    )


def now_ms() -> int:
    return int(time.time() * 1000)


class Throttling:
    """Delegates to the real client after failing the first ``failures`` calls with throttling."""

    def __init__(self, client: Any, failures: int) -> None:
        self.client = client
        self.failures = failures

    def filter_log_events(self, **request: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "FilterLogEvents",
            )
        return self.client.filter_log_events(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Stop(Exception):
    pass


def test_polling_never_repeats_and_picks_up_late_events(aws: Aws) -> None:
    aws.client("logs").create_log_group(logGroupName=GROUP)
    base = now_ms() - 10_000
    put(aws, (base, "one"), (base + 1, "two"))
    poller = logs.Poller(aws.client("logs"), GROUP, start_ms=base - 1000, sleep=lambda s: None)
    assert [e.message for e in poller.fetch()] == ["one", "two"]
    assert poller.fetch() == []
    # a later event, and one that arrives late with an earlier timestamp on another stream
    put(aws, (base + 5000, "three"))
    put(aws, (base + 2, "late"), stream="s2")
    assert [e.message for e in poller.fetch()] == ["late", "three"]
    assert poller.fetch() == []


def test_an_event_stamped_ahead_of_time_hides_no_later_lines(aws: Aws) -> None:
    # CloudWatch takes timestamps up to 2 hours ahead (a producer with a fast clock); the next
    # poll window must still cover the lines stamped now
    aws.client("logs").create_log_group(logGroupName=GROUP)
    now = now_ms()
    poller = logs.Poller(aws.client("logs"), GROUP, start_ms=now - 60_000, sleep=lambda s: None)
    put(aws, (now, "first line"))
    assert [e.message for e in poller.fetch()] == ["first line"]
    put(aws, (now + 600_000, "from a clock 10 minutes fast"), stream="s2")
    assert [e.message for e in poller.fetch()] == ["from a clock 10 minutes fast"]
    put(aws, (now + 1000, "second line"))
    assert [e.message for e in poller.fetch()] == ["second line"]
    assert poller.fetch() == []


def test_lines_seen_arriving_late_widen_the_window(aws: Aws) -> None:
    # a line that reaches CloudWatch 50 s after its timestamp: later ones may be later still
    aws.client("logs").create_log_group(logGroupName=GROUP)
    now = now_ms()
    poller = logs.Poller(aws.client("logs"), GROUP, start_ms=now - 600_000, sleep=lambda s: None)
    put(aws, (now, "first line"))
    assert [e.message for e in poller.fetch()] == ["first line"]
    put(aws, (now - 50_000, "50 s late"), stream="s2")
    assert [e.message for e in poller.fetch()] == ["50 s late"]
    put(aws, (now - 90_000, "90 s late"), stream="s3")
    assert [e.message for e in poller.fetch()] == ["90 s late"]
    assert poller.fetch() == []


def test_events_seen_are_forgotten_only_outside_the_next_window(aws: Aws) -> None:
    aws.client("logs").create_log_group(logGroupName=GROUP)
    now = now_ms()
    poller = logs.Poller(
        aws.client("logs"), GROUP, start_ms=now - 600_000, overlap_ms=60_000, sleep=lambda s: None
    )
    put(aws, (now - 300_000, "old"), (now - 30_000, "recent"))
    assert [e.message for e in poller.fetch()] == ["old", "recent"]
    for _ in range(3):  # polls that find nothing new repeat nothing
        assert poller.fetch() == []
    assert len(poller._seen) <= 2


def test_throttling_backs_off_and_continues(aws: Aws) -> None:
    aws.client("logs").create_log_group(logGroupName=GROUP)
    put(aws, (now_ms(), "hello"))
    slept: list[float] = []
    poller = logs.Poller(
        Throttling(aws.client("logs"), failures=3),
        GROUP,
        start_ms=now_ms() - 60_000,
        interval=1,
        max_delay=3,
        sleep=slept.append,
    )
    assert [e.message for e in poller.fetch()] == ["hello"]
    assert slept == [1, 2, 3]
    assert poller.throttled == 3


def test_follow_falls_back_to_polling_without_live_tail(aws: Aws) -> None:
    aws.client("logs").create_log_group(logGroupName=GROUP)
    put(aws, (now_ms() - 1000, "before"))
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            put(aws, (now_ms(), "after"))
        else:
            raise Stop

    stream = io.StringIO()
    poller = logs.Poller(aws.client("logs"), GROUP, start_ms=now_ms() - 60_000, sleep=sleep)
    seen: list[str] = []
    with pytest.raises(Stop):
        for event in logs.follow(
            aws.client("logs"),
            GROUP,
            start_ms=0,
            pattern=None,
            out=Output(stream, rich=False),
            poller=poller,
        ):
            seen.append(event.message)
    assert seen == ["before", "after"]
    assert "live tail unavailable" in stream.getvalue()
    assert "polling every 2s" in stream.getvalue()


def test_a_missing_log_group_is_explained(aws: Aws) -> None:
    poller = logs.Poller(aws.client("logs"), GROUP, start_ms=0)
    with pytest.raises(QrError, match="log group /aws/lambda/app-production does not exist"):
        poller.fetch()


def test_qr_logs_from_a_scratch_project(
    demo: Path, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo
    code, _, err = run_qr(capsys, "logs", "-C", str(root))
    assert code == 1 and "does not exist" in err, err

    aws.client("logs").create_log_group(logGroupName=GROUP)
    put(
        aws,
        (now_ms() - 7_200_000, "too old"),
        (now_ms() - 1000, '{"level":"ERROR","message":"charge failed","request_id":"job-7"}'),
        (now_ms(), "REPORT RequestId: job-7 Duration: 3 ms"),
    )
    code, out, err = run_qr(capsys, "logs", "-C", str(root))
    assert code == 0, err
    assert "too old" not in out
    assert "ERROR   [job-7] charge failed" in out
    assert "REPORT RequestId" in out
    code, out, err = run_qr(
        capsys, "logs", "--since", "3h", "--filter", "charge failed", "-C", str(root)
    )
    assert code == 0, err
    assert "charge failed" in out and "REPORT" not in out and "too old" not in out
    code, out, err = run_qr(capsys, "logs", "--since", "soon", "-C", str(root))
    assert code == 1 and "not a duration" in err


def test_qr_logs_tail_streams_until_ctrl_c(tmp_path: Path, aws: Aws) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    (root / "qr.yaml").write_text("name: app\n")
    aws.client("logs").create_log_group(logGroupName=GROUP)
    put(aws, (now_ms(), "first line"))

    def until(line: str) -> bool:
        if "first line" in line:
            put(aws, (now_ms(), "second line"))
        return "second line" in line

    code, out, err = interrupt_qr(["logs", "--tail", "-C", str(root)], until, '"second line"')
    assert code == 0, err
    assert "live tail unavailable" in out
    assert out.count("first line") == 1
    assert out.rstrip().endswith("stopped")
