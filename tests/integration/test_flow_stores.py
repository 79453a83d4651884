"""The ``BucketStore`` contract, run against both adapters: SQLite (local) and DynamoDB (moto)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qr.runtime.aws.flow import DynamoBuckets
from qr.runtime.flow import BucketStore, RateLimit
from qr.runtime.local.engine import Engine
from qr.runtime.local.flow import LocalBuckets
from tests.integration.lambda_support import create_connections_table, moto_clients

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, moto_url: str
) -> Iterator[tuple[BucketStore, Clock]]:
    clock = Clock()
    if request.param == "sqlite":
        engine = Engine(tmp_path / "queues.db", clock=clock)
        yield LocalBuckets(engine), clock
        engine.close()
        return

    clients = moto_clients(moto_url)
    table = f"flow-{tmp_path.name[-20:].strip('_')}"
    create_connections_table(clients.get("dynamodb"), table)  # the same pk/sk shape
    yield DynamoBuckets(table, clients, clock=clock), clock


def test_burst_then_one_token_per_interval(store: tuple[BucketStore, Clock]) -> None:
    buckets, clock = store
    limit = RateLimit(3, 1.5)  # 2 tokens a second
    assert [buckets.take("q##", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("q##", limit) == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("q##", limit) == 0.0
    assert buckets.take("q##", limit) == pytest.approx(0.5)
    clock.now += 10  # refilled to the limit, not beyond
    assert [buckets.take("q##", limit) for _ in range(4)][-1] == pytest.approx(0.5)


def test_buckets_are_independent(store: tuple[BucketStore, Clock]) -> None:
    buckets, _ = store
    limit = RateLimit(1, 60)
    assert buckets.take("q#user#a", limit) == 0.0
    assert buckets.take("q#user#a", limit) == pytest.approx(60)
    assert buckets.take("q#user#b", limit) == 0.0
    assert buckets.take("other#user#a", limit) == 0.0


def test_racing_takers_never_exceed_the_limit(store: tuple[BucketStore, Clock]) -> None:
    buckets, _ = store
    limit = RateLimit(10, 1000)
    taken: list[float] = []
    lock = threading.Lock()

    def worker(take: Callable[[str, RateLimit], float]) -> None:
        for _ in range(8):
            wait = take("hot##", limit)
            with lock:
                taken.append(wait)

    threads = [threading.Thread(target=worker, args=(buckets.take,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(taken) == 32
    assert sum(1 for wait in taken if wait == 0.0) == 10
