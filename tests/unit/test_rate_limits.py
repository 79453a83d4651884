"""Rate limits: the config rules, the bucket arithmetic and the local engine's claims, on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from qr.runtime.flow import Bucket, RateLimit, bucket_id, key_value, take
from qr.runtime.local.engine import Engine
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import JSON, TEXT


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Engine:
    return Engine(tmp_path / "queues.db", clock=clock)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"limit": 0, "per": 1}, "['limit'] must be a whole number of jobs, 1 or more, got 0"),
        ({"limit": -3}, "got -3"),
        ({"limit": 2.5}, "got 2.5"),
        ({"limit": 5, "per": -1}, "['per'] must be a window in seconds above 0"),
        ({"limit": 5, "per": 0}, "got 0"),
        ({"limit": 5, "per": 100_000}, "at most 86,400"),
        ({"limit": 5, "key": 3}, "['key'] must be 'user', 'group' or the name of a payload field"),
        ({"limit": 5, "burst": 3}, "unknown key(s) ['burst']"),
        ("10/s", "must be a dict"),
    ],
)
def test_bad_config_says_what_is_wrong(raw: object, error: str) -> None:
    result = RateLimit.parse(raw)
    assert isinstance(result, str) and error in result


def test_good_config() -> None:
    assert RateLimit.parse({"limit": 10}) == RateLimit(10, 1.0, None)
    limit = RateLimit.parse({"limit": 3, "per": 60, "key": "user"})
    assert limit == RateLimit(3, 60.0, "user")
    assert isinstance(limit, RateLimit) and limit.describe() == "3/60s per user"


def test_token_bucket_bursts_then_refills() -> None:
    limit = RateLimit(2, 1.0)
    bucket, wait = take(None, limit, 100.0)
    assert (bucket, wait) == (Bucket(1.0, 100.0), 0.0)
    bucket, wait = take(bucket, limit, 100.0)
    assert wait == 0.0
    bucket, wait = take(bucket, limit, 100.1)  # 0.2 tokens refilled: wait for 0.8 more
    assert wait == pytest.approx(0.4)
    bucket, wait = take(bucket, limit, 100.5)  # 1.0 token by now
    assert wait == 0.0 and bucket.tokens == pytest.approx(0.0)
    bucket, _ = take(bucket, limit, 200.0)  # never more than the limit
    assert bucket.tokens == pytest.approx(1.0)


def test_key_values() -> None:
    by_field = RateLimit(1, 1.0, "tenant")
    kw = {"group_id": "g", "user_id": "u", "content_type": JSON}
    assert key_value(by_field, body='{"tenant": "t1"}', **kw) == "t1"
    assert key_value(by_field, body='{"tenant": 7}', **kw) == "7"
    assert key_value(by_field, body='{"other": 1}', **kw) == ""
    assert key_value(by_field, body="[1]", **kw) == ""
    assert key_value(RateLimit(1, 1.0, "user"), body="{}", **kw) == "u"
    assert key_value(RateLimit(1, 1.0, "group"), body="{}", **kw) == "g"
    assert key_value(by_field, body="tenant", group_id=None, user_id=None, content_type=TEXT) == ""
    long = bucket_id("q", by_field, "x" * 500)
    assert long.startswith("q#tenant#sha256:") and len(long) < 100


def test_claims_past_the_limit_are_postponed_not_received(engine: Engine, clock: Clock) -> None:
    limit = RateLimit(2, 1.0)
    ids = [engine.push(OutgoingJob("q", f'{{"i": {i}}}', JSON)).job_id for i in range(5)]
    first = engine.claim("q", 10, 30, rate_limit=limit)
    assert [c.job_id for c in first] == ids[:2]
    # the other three wait one token apart (0.5 s at 2/s), nothing received
    stats = engine.stats(["q"])[0]
    assert (stats.depth, stats.in_flight, stats.delayed) == (0, 2, 3)
    assert engine.next_visible_ms("q") == int(clock.now * 1000) + 500
    assert engine.claim("q", 10, 30, rate_limit=limit) == []
    clock.now += 0.5
    (second,) = engine.claim("q", 10, 30, rate_limit=limit)
    assert (second.job_id, second.received_count) == (ids[2], 1)  # no attempt burnt
    clock.now += 1.0
    rest = engine.claim("q", 10, 30, rate_limit=limit)
    assert [c.job_id for c in rest] == ids[3:]


def test_buckets_per_key_and_fifo_order(engine: Engine, clock: Clock) -> None:
    limit = RateLimit(1, 10.0, "user")
    for user in ("a", "a", "b"):
        engine.push(OutgoingJob("q", "{}", JSON, user_id=user))
    claimed = engine.claim("q", 10, 30, rate_limit=limit)
    assert sorted(c.user_id or "" for c in claimed) == ["a", "b"]

    fifo = RateLimit(1, 1.0)
    for i in range(3):
        engine.push(OutgoingJob("f.fifo", f'"{i}"', JSON, group_id="g"))
    (head,) = engine.claim("f.fifo", 10, 30, rate_limit=fifo)
    assert engine.ack(head)
    assert engine.claim("f.fifo", 10, 30, rate_limit=fifo) == []  # postponed, group waits
    clock.now += 1.0
    (nxt,) = engine.claim("f.fifo", 10, 30, rate_limit=fifo)
    assert (nxt.body, nxt.received_count) == ('"1"', 1)


def test_a_debounced_push_replaces_the_keys_waiting_job(engine: Engine, clock: Clock) -> None:
    first = engine.push(OutgoingJob("q", '"a1"', JSON, delay=5, debounce_key="a")).job_id
    engine.push(OutgoingJob("q", '"b1"', JSON, delay=5, debounce_key="b"))
    last = engine.push(OutgoingJob("q", '"a2"', JSON, delay=5, debounce_key="a")).job_id
    assert engine.stats(["q"])[0].delayed == 2  # a2 replaced a1
    assert engine.claim("q", 10, 30) == []
    clock.now += 5
    claimed = engine.claim("q", 10, 30)
    assert sorted(c.body for c in claimed) == ['"a2"', '"b1"']
    assert first not in {c.job_id for c in claimed} and last in {c.job_id for c in claimed}
    # a job being worked on is not replaced: the new push runs after it
    engine.push(OutgoingJob("q", '"a3"', JSON, delay=5, debounce_key="a"))
    assert all(engine.ack(c) for c in claimed)
    clock.now += 5
    (again,) = engine.claim("q", 10, 30)
    assert again.body == '"a3"'
