"""Flow control shared by the platforms: rate limits (token buckets).

``config["rate_limit"] = {"limit": 10, "per": 1.0, "key": "user"}`` on a queue: at most
``limit`` jobs start per ``per`` seconds, per key. The key is optional: ``"user"`` (the pushing
user's id), ``"group"`` (the FIFO group or fair-queue group) or the name of a payload field (a
JSON object's top-level field; jobs without it share one bucket with the queue's keyless jobs).

A bucket holds up to ``limit`` tokens and refills at ``limit / per`` tokens a second (bursts of
``limit``, then a steady rate). A job that finds no token is not failed and not counted as an
attempt where the platform allows it: it waits until a token will be there
(``wait_for``); its attempt count stays as it was locally, while on SQS the receive counts.

``RateLimit.parse`` validates the config (load time); ``take`` is the bucket arithmetic every
store uses: the local engine inside its claim transaction (``qr.runtime.local.engine``), DynamoDB
with conditional writes on AWS (``qr.runtime.aws.flow``). ``BucketStore`` is the port both
implement; one contract suite tests both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_WINDOW_SECONDS = 86_400
"""The longest rate-limit window (a day): longer ones belong to a schedule or a quota system."""
MAX_KEY_LENGTH = 200
"""Key values longer than this are hashed (DynamoDB keys are at most 2,048 bytes)."""
SPECIAL_KEYS = ("user", "group")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    """Jobs per window (also the burst)."""
    per: float
    """The window in seconds."""
    key: str | None = None
    """``None`` (one bucket per queue), ``"user"``, ``"group"`` or a payload field name."""

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.limit / self.per

    def describe(self) -> str:
        by = f" per {self.key}" if self.key else ""
        return f"{self.limit}/{self.per:g}s{by}"

    @staticmethod
    def parse(raw: object) -> RateLimit | str:
        """The config value as a ``RateLimit``, or what is wrong with it."""
        example = '{"limit": 10, "per": 1.0, "key": "user"}'
        if not isinstance(raw, dict):
            return f"config['rate_limit'] must be a dict such as {example}, got {raw!r}"
        unknown = sorted(set(raw) - {"limit", "per", "key"})
        if unknown:
            return f"config['rate_limit'] has unknown key(s) {unknown}; known: limit, per, key"
        limit, per, key = raw.get("limit"), raw.get("per", 1.0), raw.get("key")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            return f"config['rate_limit']['limit'] must be a whole number of jobs, 1 or more, got {limit!r}"
        if (
            isinstance(per, bool)
            or not isinstance(per, int | float)
            or not 0 < per <= MAX_WINDOW_SECONDS
        ):
            return (
                f"config['rate_limit']['per'] must be a window in seconds above 0 and at most "
                f"{MAX_WINDOW_SECONDS:,} (a day), got {per!r}"
            )
        if key is not None and (not isinstance(key, str) or not key.strip()):
            return (
                "config['rate_limit']['key'] must be 'user', 'group' or the name of a payload "
                f"field, got {key!r}"
            )
        return RateLimit(limit, float(per), key)


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated: float
    """Epoch seconds of the last take."""


def take(bucket: Bucket | None, limit: RateLimit, now: float) -> tuple[Bucket, float]:
    """Take one token: ``(the bucket after, 0.0)``, or ``(unchanged, seconds to wait)``."""
    if bucket is None:
        tokens = float(limit.limit)
    else:
        elapsed = max(0.0, now - bucket.updated)
        tokens = min(float(limit.limit), bucket.tokens + elapsed * limit.rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0.0
    return Bucket(tokens, now), wait_for(tokens, limit, 1)


def wait_for(tokens: float, limit: RateLimit, position: int) -> float:
    """Seconds until the ``position``-th waiting job (1, 2, ...) can have its token."""
    return max(0.0, (position - tokens) / limit.rate)


def bucket_id(queue: str, limit: RateLimit, value: str) -> str:
    """The store's key of one bucket: the queue, the key kind and the key's value."""
    if len(value) > MAX_KEY_LENGTH:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return f"{queue}#{limit.key or ''}#{value}"


def key_value(
    limit: RateLimit, *, group_id: str | None, user_id: str | None, body: str, content_type: str
) -> str:
    """The value a job is limited by (``""`` when it has none: the queue's shared bucket)."""
    if limit.key is None:
        return ""
    if limit.key == "user":
        return user_id or ""
    if limit.key == "group":
        return group_id or ""
    if not content_type.startswith("application/json"):
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, Mapping) or data.get(limit.key) is None:
        return ""
    value: Any = data[limit.key]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class BucketStore(Protocol):
    """Where the buckets live: ``take`` one token of bucket ``bucket`` (atomically)."""

    def take(self, bucket: str, limit: RateLimit) -> float:
        """0.0 when a token was taken, else the seconds until one will be there."""
        ...
