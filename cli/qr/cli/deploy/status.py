"""``qr status``: what is deployed and how the stage is doing.

Collected as plain data (also the ``--json`` output): the version ``current`` serves against the
newest published one, the last deploy record from ``.qr/deployments.json``, the URLs from that
deploy's Terraform outputs, per queue the messages waiting / in flight / delayed and in its
dead-letter queue (``GetQueueAttributes``), and the schedules with their next run (rates count
from now: EventBridge Scheduler does not report its next run). A stage that is not deployed is a
status, not an error.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from qr.cli.console import Output
from qr.cli.deploy.aws import aws_errors, error_code
from qr.cli.deploy.target import Target
from qr.cli.deploy.versions import Versions
from qr.cli.errors import QrError
from qr.runtime.manifest import Manifest

_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def collect(target: Target, manifest: Manifest, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    versions = Versions(target.aws, target.function, target.alias)
    try:
        published = versions.list()
        current = versions.alias_version()
        deployed = True
    except QrError:
        if _function_exists(target):
            raise
        published, current, deployed = [], None, False
    last = target.log.last(target.stage)
    latest = published[0].version if published else None
    return {
        "stage": target.stage,
        "region": target.aws.region,
        "function": target.function,
        "deployed": deployed,
        "alias": target.alias,
        "current_version": current,
        "latest_version": latest,
        "up_to_date": current is not None and current == latest,
        "last_deploy": (
            {k: v for k, v in asdict(last).items() if k != "outputs"} if last else None
        ),
        "urls": {
            "http": target.outputs.get("http_url"),
            "websocket": target.outputs.get("ws_url"),
        },
        "queues": [_queue(target, q.name) for q in manifest.queues] if deployed else [],
        "schedules": [
            {
                "name": s.name,
                "expression": s.expression.normalized,
                "next_run": _iso(s.expression.next_run(now, started=now)),
            }
            for s in manifest.schedules
        ],
    }


def _function_exists(target: Target) -> bool:
    try:
        target.aws.client("lambda").get_function_configuration(FunctionName=target.function)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def _queue(target: Target, name: str) -> dict[str, Any]:
    urls = target.outputs.get("queue_urls") or {}
    dlq_urls = target.outputs.get("dlq_urls") or {}
    main = _attributes(target, urls.get(name), target.queue_name(name))
    dlq = _attributes(target, dlq_urls.get(name), target.dlq_name(name))
    return {
        "name": name,
        "exists": main is not None,
        "waiting": _count(main, "ApproximateNumberOfMessages"),
        "in_flight": _count(main, "ApproximateNumberOfMessagesNotVisible"),
        "delayed": _count(main, "ApproximateNumberOfMessagesDelayed"),
        "dead_letters": _count(dlq, "ApproximateNumberOfMessages"),
    }


def _attributes(target: Target, url: str | None, name: str) -> dict[str, str] | None:
    sqs = target.aws.client("sqs")
    with aws_errors(f"reading queue {name}"):
        try:
            url = url or sqs.get_queue_url(QueueName=name)["QueueUrl"]
            return dict(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_ATTRIBUTES)["Attributes"]
            )
        except ClientError as exc:
            if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                return None
            raise


def _count(attributes: dict[str, str] | None, key: str) -> int | None:
    return int(attributes[key]) if attributes and key in attributes else None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def show(data: dict[str, Any], out: Output) -> None:
    out.line(f"Stage {data['stage']} ({data['region']}) - function {data['function']}")
    if not data["deployed"]:
        out.line(f"  not deployed: {data['function']} does not exist. Deploy with: qr deploy")
    else:
        state = "up to date" if data["up_to_date"] else f"latest is {data['latest_version']}"
        out.line(f"  {data['alias']:<10} version {data['current_version']} ({state})")
    last = data["last_deploy"]
    if last:
        sha = f", git {last['git_sha']}" if last.get("git_sha") else ""
        out.line(
            f"  last {last['kind']:<6} version {last['version']} at {last['time']} by "
            f"{last['user']}{sha}"
        )
    for label, key in (("HTTP", "http"), ("WebSocket", "websocket")):
        if data["urls"].get(key):
            out.line(f"  {label:<10} {data['urls'][key]}")
    if data["queues"]:
        out.table(
            "Queues",
            ["queue", "waiting", "in flight", "delayed", "dead letters"],
            [
                [q["name"]]
                + [_number(q[k]) for k in ("waiting", "in_flight", "delayed", "dead_letters")]
                if q["exists"]
                else [q["name"], "not deployed", "", "", ""]
                for q in data["queues"]
            ],
        )
    if data["schedules"]:
        out.table(
            "Schedules",
            ["schedule", "expression", "next run (UTC)"],
            [[s["name"], s["expression"], s["next_run"] or "never"] for s in data["schedules"]],
        )


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
