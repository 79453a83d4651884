"""Rules Terraform would only find at apply time (or AWS would reject), checked before rendering.

``check(model, stage)`` collects every broken rule as a ``Problem`` naming the file to change
(the handler file, or ``qr.yaml``) and how to fix it, and raises them together as one
``ProjectError``. Most rules can only break through user input (long names, reserved
environment variables, a zone without a domain); the queue rules also guard the model's own
arithmetic (visibility vs timeouts, FIFO batching), so a future change to the model that
breaks an AWS rule fails here rather than half-way through ``terraform apply``.
"""

from __future__ import annotations

from collections.abc import Iterator

from qr.cli.terraform.model import (
    LAMBDA_TIMEOUT_MAX,
    MANAGED_POLICIES_PER_ROLE,
    MANAGED_POLICY_SIZE_MAX,
    ROLE_POLICY_SIZE_MAX,
    VISIBILITY_FACTOR,
    VISIBILITY_MAX,
    Expr,
    Queue,
    TerraformModel,
)
from qr.runtime.config import CONFIG_FILE, Stage
from qr.runtime.errors import Problem, ProjectError

SQS_NAME_MAX = 80
FUNCTION_NAME_MAX = 64
ROLE_NAME_MAX = 64
SCHEDULE_NAME_MAX = 64
API_NAME_MAX = 128
TABLE_NAME_MAX = 255
DNS_NAME_MAX = 253
DNS_LABEL_MAX = 63
ENV_SIZE_MAX = 4096
EXPR_SIZE_ESTIMATE = 160
"""Bytes we count for an environment value Terraform fills in (a URL or a table name)."""
RESERVED_ENV = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)  # fmt: skip
_SHORTER = "shorten the project name or the stage name in qr.yaml"


def check(model: TerraformModel, stage: Stage) -> None:
    """Raise ``ProjectError`` listing every rule the model breaks."""
    problems = [
        *_names(model),
        *_function(model),
        *_iam(model),
        *_environment(model, stage),
        *_domain(model, stage),
    ]
    for queue in model.queues:
        problems.extend(_queue(model, queue))
    if problems:
        raise ProjectError(problems)


def _too_long(kind: str, name: str, limit: int, file: str, hint: str) -> Iterator[Problem]:
    if len(name) > limit:
        yield Problem(
            file,
            None,
            f"the {kind} name {name!r} has {len(name)} characters; AWS allows {limit}",
            hint,
        )


def _names(model: TerraformModel) -> Iterator[Problem]:
    names = model.names
    yield from _too_long(
        "Lambda function", names.function, FUNCTION_NAME_MAX, CONFIG_FILE, _SHORTER
    )
    for role in (names.role, names.scheduler_role):
        yield from _too_long("IAM role", role, ROLE_NAME_MAX, CONFIG_FILE, _SHORTER)
    for api in (names.http_api, names.ws_api):
        yield from _too_long("API", api, API_NAME_MAX, CONFIG_FILE, _SHORTER)
    yield from _too_long(
        "DynamoDB table", names.connections_table, TABLE_NAME_MAX, CONFIG_FILE, _SHORTER
    )
    sqs_names: dict[str, str] = {}
    for queue in model.queues:
        hint = f"shorten the queue name (rename {queue.file}), the project name or the stage name"
        for name in (queue.sqs_name, queue.dlq_name):
            yield from _too_long("SQS queue", name, SQS_NAME_MAX, queue.file, hint)
            if name in sqs_names:
                yield Problem(
                    queue.file,
                    None,
                    f"the SQS queue name {name!r} is also used by {sqs_names[name]}",
                    "rename one of the queue files (every queue has a '<name>-dlq' dead-letter queue)",
                )
            sqs_names[name] = queue.file
    if model.schedules:
        schedules = model.schedules
        dlq = schedules.dlq_name
        yield from _too_long("SQS queue", dlq, SQS_NAME_MAX, CONFIG_FILE, _SHORTER)
        if dlq in sqs_names:
            yield Problem(
                sqs_names[dlq],
                None,
                f"the SQS queue name {dlq!r} is reserved for the schedules' dead-letter queue",
                "rename the queue file",
            )
        yield from _too_long(
            "schedule group", schedules.group, SCHEDULE_NAME_MAX, CONFIG_FILE, _SHORTER
        )
        for item in schedules.items:
            yield from _too_long(
                "schedule", item.name, SCHEDULE_NAME_MAX, item.file, f"rename {item.file}"
            )  # fmt: skip


def _function(model: TerraformModel) -> Iterator[Problem]:
    function = model.function
    if not 1 <= function.timeout <= LAMBDA_TIMEOUT_MAX:
        yield Problem(
            CONFIG_FILE,
            None,
            f"the function timeout {function.timeout}s is outside Lambda's 1-{LAMBDA_TIMEOUT_MAX}s",
            "lower the handlers' config['timeout']",
        )
    for file, timeout in function.handler_timeouts:
        if timeout > function.timeout:
            yield Problem(
                file,
                None,
                f"config['timeout'] {timeout:g}s is longer than the function timeout {function.timeout}s",
                f"use at most {function.timeout} seconds",
            )


def _iam(model: TerraformModel) -> Iterator[Problem]:
    """IAM's size quotas (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)."""
    if model.policy_size > ROLE_POLICY_SIZE_MAX:
        yield Problem(
            CONFIG_FILE,
            None,
            f"the function role's inline policy would have about {model.policy_size} characters; "
            f"IAM allows {ROLE_POLICY_SIZE_MAX}",
            "this is a bug in qr's Terraform model; please report it",
        )
    for policy in model.managed_policies:
        size = 40 + policy.statement.size
        if size > MANAGED_POLICY_SIZE_MAX:
            yield Problem(
                CONFIG_FILE,
                None,
                f"the managed policy {policy.name!r} would have about {size} characters; IAM "
                f"allows {MANAGED_POLICY_SIZE_MAX}",
                "this is a bug in qr's Terraform model; please report it",
            )
    if len(model.managed_policies) > MANAGED_POLICIES_PER_ROLE:
        yield Problem(
            "queues/",
            None,
            f"{len(model.queues)} queues need {len(model.managed_policies)} IAM policies to list "
            f"them; a role takes {MANAGED_POLICIES_PER_ROLE} managed policies (IAM's default quota)",
            "use fewer queues or shorter queue names (or split the project)",
        )


def _environment(model: TerraformModel, stage: Stage) -> Iterator[Problem]:
    where = f"stages.{stage.name}.env"
    for key in stage.env:
        if key in RESERVED_ENV or key.startswith("AWS_LAMBDA_"):
            yield Problem(
                CONFIG_FILE,
                None,
                f"{where}: {key} is reserved by Lambda and cannot be set",
                f"remove {key} or use another name",
            )
        elif key.startswith("QR_"):
            yield Problem(
                CONFIG_FILE,
                None,
                f"{where}: {key} uses the QR_ prefix, which qr sets itself",
                "use a name that does not start with QR_",
            )
    size = sum(
        len(k) + (EXPR_SIZE_ESTIMATE if isinstance(v, Expr) else len(v.encode()))
        for k, v in model.function.env
    )
    if size > ENV_SIZE_MAX:
        yield Problem(
            CONFIG_FILE,
            None,
            f"{where} makes the function's environment about {size} bytes; Lambda allows {ENV_SIZE_MAX}",
            "keep large values in SSM with `qr env set` (read at cold start) instead of qr.yaml",
        )


def _domain(model: TerraformModel, stage: Stage) -> Iterator[Problem]:
    where = f"stages.{stage.name}"
    if stage.zone and not stage.domain:
        yield Problem(
            CONFIG_FILE,
            None,
            f"{where}.zone is set but {where}.domain is not",
            f"add {where}.domain (the host name to serve, inside that zone) or remove the zone",
        )
    domain = model.domain
    if domain is None:
        return
    if model.http is None:
        yield Problem(
            CONFIG_FILE,
            None,
            f"{where}.domain {domain.name!r} needs an HTTP API, but api/ has no routes",
            f"add a route under api/ or remove {where}.domain",
        )
    if domain.name.startswith("*"):
        yield Problem(
            CONFIG_FILE, None, f"{where}.domain cannot be a wildcard", "use one host name"
        )  # fmt: skip
    for name in domain.names:
        if len(name) > DNS_NAME_MAX or any(len(part) > DNS_LABEL_MAX for part in name.split(".")):
            yield Problem(
                CONFIG_FILE,
                None,
                f"{name!r} is not a valid DNS name (at most {DNS_NAME_MAX} characters, "
                f"{DNS_LABEL_MAX} per label); the WebSocket API is served on ws.<domain>",
                f"use a shorter {where}.domain",
            )


def _queue(model: TerraformModel, queue: Queue) -> Iterator[Problem]:
    def problem(message: str, hint: str) -> Problem:
        return Problem(queue.file, None, f"queue {queue.name!r}: {message}", hint)

    needed = min(VISIBILITY_MAX, VISIBILITY_FACTOR * model.function.timeout)
    if queue.visibility_timeout < needed:
        yield problem(
            f"visibility timeout {queue.visibility_timeout}s is below {needed}s "
            f"({VISIBILITY_FACTOR}x the function timeout, AWS's advice for event source mappings)",
            "this is a bug in qr's Terraform model; please report it",
        )
    if queue.waves > 1 and queue.batch_seconds > model.function.timeout:
        yield problem(
            f"a batch of {queue.batch_size} may run {queue.waves} x {queue.job_timeout:g}s in one "
            f"invocation ({queue.batch_seconds}s with the margin), longer than the function "
            f"timeout {model.function.timeout}s; later jobs would time out without running",
            f"use a smaller config['batch_size'] (at most {LAMBDA_TIMEOUT_MAX}s per batch)",
        )
    if queue.visibility_timeout > VISIBILITY_MAX:
        yield problem(
            f"visibility timeout {queue.visibility_timeout}s is above SQS's {VISIBILITY_MAX}s",
            "lower config['timeout']",
        )
    if queue.fifo:
        if not queue.dlq_name.endswith(".fifo") or not queue.sqs_name.endswith(".fifo"):
            yield problem(
                "a FIFO queue needs a FIFO dead-letter queue", "this is a bug in qr; report it"
            )
        if queue.batch_size > 10:
            yield problem(
                f"batch_size {queue.batch_size} is above 10, the FIFO maximum",
                "use config['batch_size'] of 1-10",
            )
        if queue.batching_window is not None:
            yield problem(
                "FIFO queues take no batching window", "this is a bug in qr; report it"
            )  # fmt: skip
    else:
        if not 1 <= queue.batch_size <= 10000:
            yield problem(
                f"batch_size {queue.batch_size} is outside 1-10000",
                "use config['batch_size'] of 1-10",
            )
        if queue.batch_size > 10 and not queue.batching_window:
            yield problem(
                "a batch_size above 10 needs a batching window of at least 1 second",
                "use config['batch_size'] of 1-10",
            )
    if queue.batching_window is not None and not 0 <= queue.batching_window <= 300:
        yield problem(
            f"batching window {queue.batching_window}s is outside 0-300s",
            "this is a bug in qr; report it",
        )
    if not 2 <= queue.maximum_concurrency <= 1000:
        yield problem(
            f"concurrency {queue.maximum_concurrency} is outside 2-1000 (SQS event sources)",
            "use config['concurrency'] of 2-1000",
        )
    if not 1 <= queue.max_receive_count <= 1000:
        yield problem(
            f"max_attempts {queue.max_receive_count} is outside 1-1000 (SQS maxReceiveCount)",
            "use config['max_attempts'] of 1-1000",
        )
