"""Manifest + qr.yaml + stage -> the typed Terraform model (every decision lives here).

The model is frozen data the templates print; a template never decides anything beyond
"print this block when the model has it". Values that are Terraform expressions rather than
literals are ``Expr`` (printed raw); everything else is printed as an HCL literal.

Decisions made here, in order:

1. names: prefix ``<name>-<stage>``; function, log group, SSM path, queues and DLQs exactly as
   the shared contract spells them; internal names (roles, APIs, table) that could pass AWS
   limits are shortened with a hash suffix;
2. the function: one Lambda for every handler, timeout = the longest time one invocation may
   need + a margin (at most 900 s): a handler's timeout, or a queue's whole batch (a FIFO batch
   runs its jobs one after another, a standard one ``concurrency`` at a time; the manifest has
   already shrunk batches to fit 900 s), memory from the stage or the project, environment (the
   ``QR_*`` contract plus the stage's ``env``);
3. per queue: FIFO attributes, visibility timeout (6 x the function timeout, AWS's advice for
   event source mappings, which refuse anything below the function timeout), redrive to a DLQ
   of the same kind with ``maxReceiveCount = max_attempts``, batch size, batching window (never
   for FIFO), maximum concurrency;
4. the HTTP API: one ``ANY`` route per handler file (the app answers 405 itself, as in
   ``qr dev``), API-level CORS when every route shares one CORS setting, else CORS by the app;
5. the WebSocket API when ``socket/`` exists, with the connections table; the job state table
   when a queue keeps job state (``config["keep_results"]`` above 0, the default);
   the flow-control table (rate-limit buckets, debounce versions) when a queue has a
   ``rate_limit`` or is standard;
6. schedules (``never`` gets no resource), their group, role and dead-letter queue;
7. the custom domain (HTTP on the domain, WebSocket on ``ws.<domain>``), with Route53 records
   when the stage names a zone, else the records to create as an output;
8. IAM statements scoped to this stage's resources, each queue by its ARN (inline, or in
   managed policies when the inline policy would pass IAM's size limit);
9. the state backend.

``qr.cli.terraform.checks`` validates the result before anything is rendered.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from qr.runtime.config import LOG_RETENTION_DAYS, ProjectConfig, Stage
from qr.runtime.handler_config import FUNCTION_MARGIN, JOB_TIMEOUT_MAX, batch_seconds, batch_waves
from qr.runtime.manifest import Cors as RouteCors
from qr.runtime.manifest import Manifest, Route

HANDLER = "qr.runtime.aws.entry.handler"
ALIAS = "current"
BUNDLE = "${path.module}/../bundle.zip"
LAMBDA_TIMEOUT_MAX = JOB_TIMEOUT_MAX
VISIBILITY_FACTOR = 6
"""Queue visibility >= 6 x the function timeout, as AWS advises for SQS event source mappings
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)."""
VISIBILITY_MAX = 43200
"""SQS's maximum visibility timeout, 12 hours
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html)."""
MESSAGE_RETENTION = 345600
"""Source queues keep a job 4 days (the SQS default, written out)."""
DLQ_RETENTION = 1209600
"""Dead-letter queues keep a job 14 days (the SQS maximum), longer than any source queue."""
MAX_MESSAGE_SIZE = 1048576
HTTP_INTEGRATION_TIMEOUT_MS = 30000
SCHEDULE_RETRY_ATTEMPTS = 3
SCHEDULE_EVENT_AGE = 3600
CONNECTION_TTL_ATTRIBUTE = "expires_at"
JOBS_TTL_ATTRIBUTE = "expires_at"
ROLE_POLICY_SIZE_MAX = 10240
"""Non-whitespace characters all inline policies of one IAM role may hold together; a managed
policy may hold 6,144 and a role takes 10 managed policies unless the quota is raised
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)."""
MANAGED_POLICY_SIZE_MAX = 6144
MANAGED_POLICIES_PER_ROLE = 10
_ARN_PARTS = {"${local.partition}": 10, "${local.region}": 16, "${local.account_id}": 12}
"""Longest values we assume for the parts of an ARN Terraform fills in (``aws-us-gov``,
``ap-southeast-2`` with room to spare, a 12-digit account), so size estimates err high."""
_REFERENCE_SIZE = 200
"""Characters we count for an ARN read from another resource (a table, an API)."""


class Expr(str):
    """A Terraform expression, printed as is (``aws_sqs_queue.emails.arn``)."""

    __slots__ = ()


@dataclass(frozen=True)
class Names:
    prefix: str
    function: str
    log_group: str
    ssm_path: str
    role: str
    scheduler_role: str
    http_api: str
    http_access_log_group: str
    ws_api: str
    connections_table: str
    flow_table: str
    schedule_group: str
    schedules_dlq: str


@dataclass(frozen=True)
class Function:
    name: str
    alias: str
    runtime: str
    architecture: str
    memory: int
    timeout: int
    handler: str
    bundle: str
    env: tuple[tuple[str, str | Expr], ...]
    handler_timeouts: tuple[tuple[str, float], ...]
    """(file, timeout) of every handler, for checks and the summary."""


@dataclass(frozen=True)
class Queue:
    name: str
    file: str
    label: str
    fifo: bool
    sqs_name: str
    dlq_name: str
    job_timeout: float
    batch_seconds: int
    """The function timeout one full batch needs (see ``batch_seconds``)."""
    waves: int
    """Job timeouts one batch may take in a row (the batch size for FIFO)."""
    visibility_timeout: int
    max_receive_count: int
    batch_size: int
    batching_window: int | None
    maximum_concurrency: int

    @property
    def arn(self) -> Expr:
        return Expr(f"aws_sqs_queue.{self.label}.arn")

    @property
    def dlq_label(self) -> str:
        return f"{self.label}_dlq"

    @property
    def dlq_arn(self) -> Expr:
        return Expr(f"aws_sqs_queue.{self.dlq_label}.arn")

    @property
    def attributes(self) -> tuple[tuple[str, object], ...]:
        """``aws_sqs_queue`` arguments of the queue itself."""
        fifo: tuple[tuple[str, object], ...] = (
            (("fifo_queue", True), ("content_based_deduplication", True)) if self.fifo else ()
        )
        redrive = Expr(
            f"jsonencode({{ deadLetterTargetArn = aws_sqs_queue.{self.dlq_label}.arn, "
            f"maxReceiveCount = {self.max_receive_count} }})"
        )
        return (
            ("name", self.sqs_name),
            *fifo,
            ("visibility_timeout_seconds", self.visibility_timeout),
            ("message_retention_seconds", MESSAGE_RETENTION),
            ("max_message_size", MAX_MESSAGE_SIZE),
            ("sqs_managed_sse_enabled", True),
            ("redrive_policy", redrive),
        )

    @property
    def dlq_attributes(self) -> tuple[tuple[str, object], ...]:
        """``aws_sqs_queue`` arguments of its dead-letter queue (FIFO for a FIFO queue)."""
        fifo: tuple[tuple[str, object], ...] = (("fifo_queue", True),) if self.fifo else ()
        return (
            ("name", self.dlq_name),
            *fifo,
            ("message_retention_seconds", DLQ_RETENTION),
            ("max_message_size", MAX_MESSAGE_SIZE),
            ("sqs_managed_sse_enabled", True),
        )

    @property
    def mapping_attributes(self) -> tuple[tuple[str, object], ...]:
        """``aws_lambda_event_source_mapping`` arguments (the function is the alias)."""
        window: tuple[tuple[str, object], ...] = (
            (("maximum_batching_window_in_seconds", self.batching_window),)
            if self.batching_window is not None
            else ()
        )
        return (
            ("event_source_arn", self.arn),
            ("function_name", Expr("aws_lambda_alias.current.arn")),
            ("batch_size", self.batch_size),
            *window,
            ("function_response_types", ("ReportBatchItemFailures",)),
        )


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int
    allow_credentials: bool


@dataclass(frozen=True)
class HttpRoute:
    label: str
    route_key: str
    file: str


@dataclass(frozen=True)
class HttpApi:
    name: str
    routes: tuple[HttpRoute, ...]
    cors: Cors | None
    integration_timeout_ms: int
    access_log_group: str
    throttle_rate: float
    throttle_burst: int
    disable_execute_api_endpoint: bool | Expr
    """Off without a domain; with one, on once the domain serves (qr.yaml ``default_endpoint``)."""


@dataclass(frozen=True)
class WsRoute:
    label: str
    route_key: str
    file: str | None


@dataclass(frozen=True)
class WebSocketApi:
    name: str
    stage: str
    routes: tuple[WsRoute, ...]
    table: str
    ttl_attribute: str


@dataclass(frozen=True)
class FlowTable:
    """DynamoDB state of flow control: rate-limit buckets and debounce versions
    (``qr.runtime.aws.flow``)."""

    name: str
    ttl_attribute: str
    rate_limits: tuple[tuple[str, str], ...]
    """(queue, limit) of each rate-limited queue, for the comment above the table."""


@dataclass(frozen=True)
class Schedule:
    name: str
    file: str
    label: str
    expression: str
    input: str
    """The target input: ``{"qr": "schedule", "name": ...}`` as JSON text."""


@dataclass(frozen=True)
class Schedules:
    group: str
    role: str
    dlq_name: str
    items: tuple[Schedule, ...]
    retry_attempts: int
    event_age: int


@dataclass(frozen=True)
class Domain:
    name: str
    ws_name: str | None
    zone_id: str | None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, self.ws_name) if self.ws_name else (self.name,)

    @property
    def manual_dns(self) -> bool:
        """No Route53 zone: the user creates the records that ``dns_records`` lists.

        API Gateway only takes an issued certificate, so the domain names wait (``count``)
        until ``var.domain_certificate_ready`` says the validation records are in place.
        """
        return self.zone_id is None

    @property
    def count(self) -> Expr | None:
        return Expr("var.domain_certificate_ready ? 1 : 0") if self.manual_dns else None

    @property
    def index(self) -> str:
        """How to address one counted resource (``[0]``) or an uncounted one (``""``)."""
        return "[0]" if self.manual_dns else ""

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """(kind, host name): the label of the API and stage it maps to, and its domain."""
        return (
            (("http", self.name), ("ws", self.ws_name)) if self.ws_name else (("http", self.name),)
        )

    @property
    def certificate_attributes(self) -> tuple[tuple[str, object], ...]:
        sans: tuple[tuple[str, object], ...] = (
            (("subject_alternative_names", (self.ws_name,)),) if self.ws_name else ()
        )
        return (("domain_name", self.name), *sans, ("validation_method", "DNS"))

    @property
    def validation_attributes(self) -> tuple[tuple[str, object], ...]:
        fqdns: tuple[tuple[str, object], ...] = (
            (("validation_record_fqdns", Expr("[for record in aws_route53_record.certificate_validation : record.fqdn]")),)
            if self.zone_id
            else ()
        )  # fmt: skip
        return (("certificate_arn", Expr("aws_acm_certificate.domain.arn")), *fqdns)

    @property
    def ready(self) -> Expr | None:
        """The condition under which the domain serves traffic (``None``: always)."""
        return Expr("var.domain_certificate_ready") if self.manual_dns else None


@dataclass(frozen=True)
class Backend:
    bucket: str
    key: str
    region: str


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str | Expr, ...]
    sizes: tuple[int, ...] = ()
    """Estimated length of each resource once Terraform fills it in (empty: estimate here)."""

    @property
    def size(self) -> int:
        """Non-whitespace characters of this statement in the policy JSON, erring high."""
        sizes = self.sizes or tuple(_resource_size(r) for r in self.resources)
        return (
            60 + len(self.sid) + sum(len(a) + 3 for a in self.actions) + sum(n + 3 for n in sizes)
        )


@dataclass(frozen=True)
class ManagedPolicy:
    """A customer-managed policy attached to the function's role, for statements that do not
    fit in the role's inline policy (many queues)."""

    label: str
    name: str
    statement: Statement


@dataclass(frozen=True)
class Urls:
    base: Expr | None
    """The HTTP API's public URL (custom domain when it serves): ``local.base_url``."""
    ws: Expr | None
    """``ws_url`` output."""

    @property
    def http(self) -> Expr | None:
        """``http_url`` output and ``QR_BASE_URL``."""
        return Expr("local.base_url") if self.base else None


@dataclass(frozen=True)
class JobsTable:
    """The stage's job state table (``qr.runtime.aws.job_state``): hash key ``job_id``, TTL."""

    table: str
    ttl_attribute: str = JOBS_TTL_ATTRIBUTE

    @property
    def arn(self) -> Expr:
        return Expr("aws_dynamodb_table.jobs.arn")


@dataclass(frozen=True)
class TerraformModel:
    project: str
    stage: str
    region: str
    log_retention_days: int
    names: Names
    function: Function
    queues: tuple[Queue, ...]
    http: HttpApi | None
    websocket: WebSocketApi | None
    schedules: Schedules | None
    domain: Domain | None
    backend: Backend | None
    statements: tuple[Statement, ...]
    managed_policies: tuple[ManagedPolicy, ...]
    urls: Urls
    locals: tuple[tuple[str, object], ...]
    tags: tuple[tuple[str, str], ...]
    env_file: str
    """Where the stage's env comes from, for error messages (``qr.yaml``)."""
    jobs: JobsTable | None = None
    flow: FlowTable | None = None

    @property
    def jobs_table_name(self) -> Expr | None:
        return Expr("aws_dynamodb_table.jobs.name") if self.jobs else None

    @property
    def log_retention_values(self) -> tuple[int, ...]:
        return LOG_RETENTION_DAYS

    @property
    def policy_size(self) -> int:
        """Estimated non-whitespace characters of the function role's inline policy."""
        return 40 + sum(statement.size for statement in self.statements)

    @property
    def role_policies(self) -> tuple[Expr, ...]:
        """What must exist before the function runs or a mapping is created: every policy of
        the function's role."""
        return (
            Expr("aws_iam_role_policy.function"),
            *(Expr(f"aws_iam_role_policy_attachment.{p.label}") for p in self.managed_policies),
        )

    @property
    def queue_urls(self) -> tuple[tuple[str, Expr], ...]:
        return tuple((q.name, Expr(f"aws_sqs_queue.{q.label}.url")) for q in self.queues)

    @property
    def dlq_urls(self) -> tuple[tuple[str, Expr], ...]:
        return tuple((q.name, Expr(f"aws_sqs_queue.{q.dlq_label}.url")) for q in self.queues)

    @property
    def dns_records(self) -> Expr:
        """Records the user must create: none when Route53 has the zone (Terraform creates
        them) or without a domain; else certificate validation, then the domain CNAMEs."""
        if self.domain is None or not self.domain.manual_dns:
            return Expr("[]")
        lines = [
            "[for option in aws_acm_certificate.domain.domain_validation_options : "
            "{ name = option.resource_record_name, type = option.resource_record_type, "
            "value = option.resource_record_value }],"
        ]
        for kind, _ in self.domain.targets:
            lines.append(
                f"[for domain in aws_apigatewayv2_domain_name.{kind} : "
                '{ name = domain.domain_name, type = "CNAME", '
                "value = domain.domain_name_configuration[0].target_domain_name }],"
            )
        body = "".join(f"    {line}\n" for line in lines)
        return Expr(f"concat(\n{body}  )")

    @property
    def local_state(self) -> str:
        """Local state lives outside the build directory, so a rebuild never touches it."""
        return f"../../../state/{self.stage}/terraform.tfstate"


def build_model(manifest: Manifest, stage_name: str | None = None) -> TerraformModel:
    """The Terraform model of ``manifest`` for one stage (``ProjectError`` for unknown stages)."""
    config = manifest.config
    stage = config.stage(stage_name)
    names = _names(config, stage)
    queues = tuple(_queues(manifest, names, _function_timeout(manifest)))
    websocket = _websocket(manifest, names, stage)
    schedules = _schedules(manifest, names)
    domain = _domain(stage, has_socket=websocket is not None)
    http = _http(manifest, names, config, stage, domain)
    flow = _flow(manifest, names)
    function = _function(manifest, config, stage, names, queues, websocket, http, flow)
    urls = _urls(http, websocket, domain)
    model = TerraformModel(
        project=config.name,
        stage=stage.name,
        region=config.region,
        log_retention_days=config.log_retention_days,
        names=names,
        function=function,
        queues=queues,
        http=http,
        websocket=websocket,
        schedules=schedules,
        domain=domain,
        backend=_backend(config, stage),
        statements=(),
        managed_policies=(),
        urls=urls,
        locals=_locals(config, stage, names, urls, websocket),
        tags=_tags(config, stage),
        env_file="qr.yaml",
        jobs=_jobs(manifest, names),
        flow=flow,
    )
    return _with_statements(model)


def _jobs(manifest: Manifest, names: Names) -> JobsTable | None:
    if not any(q.config.keep_results for q in manifest.queues):
        return None
    return JobsTable(table=f"{names.prefix}-jobs")


def fit_name(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` characters, else a prefix of it + an 8-character hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-_')}-{digest}"


def label(text: str, taken: set[str], suffixes: tuple[str, ...] = ("",)) -> str:
    """A Terraform resource label for ``text``; ``label + s`` for each suffix is unique among
    ``taken``, which it joins (a queue reserves ``x`` and ``x_dlq``)."""
    base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "root"
    if not base[0].isalpha():
        base = f"x_{base}"
    result = base
    if any(result + s in taken for s in suffixes):
        result = f"{base}_{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    taken.update(result + s for s in suffixes)
    return result


def _names(config: ProjectConfig, stage: Stage) -> Names:
    prefix = f"{config.name}-{stage.name}"
    return Names(
        prefix=prefix,
        function=prefix,
        log_group=f"/aws/lambda/{prefix}",
        ssm_path=f"/qr/{config.name}/{stage.name}/",
        role=fit_name(f"{prefix}-function", 64),
        scheduler_role=fit_name(f"{prefix}-scheduler", 64),
        http_api=f"{prefix}-http",
        http_access_log_group=f"/aws/apigateway/{prefix}-http",
        ws_api=f"{prefix}-ws",
        connections_table=f"{prefix}-connections",
        flow_table=f"{prefix}-flow",
        schedule_group=prefix,
        schedules_dlq=f"{prefix}-qr-schedules-dlq",
    )


def _handler_timeouts(manifest: Manifest) -> list[tuple[str, float]]:
    timeouts = [(r.file, r.config.timeout) for r in manifest.routes]
    timeouts += [(q.file, q.config.timeout) for q in manifest.queues]
    timeouts += [(s.file, s.config.timeout) for s in manifest.schedules]
    if manifest.socket:
        timeouts += [(h.file, h.config.timeout) for h in manifest.socket.handlers]
    return timeouts


def _function_timeout(manifest: Manifest) -> int:
    """Time for the longest handler, or the longest queue batch, plus the margin (<= 900 s)."""
    longest = max((t for _, t in _handler_timeouts(manifest)), default=0)
    needs = [math.ceil(longest) + FUNCTION_MARGIN]
    needs += [batch_seconds(q.config, fifo=q.fifo) for q in manifest.queues]
    return min(LAMBDA_TIMEOUT_MAX, max(needs))


def _function(
    manifest: Manifest,
    config: ProjectConfig,
    stage: Stage,
    names: Names,
    queues: tuple[Queue, ...],
    websocket: WebSocketApi | None,
    http: HttpApi | None,
    flow: FlowTable | None,
) -> Function:
    env: list[tuple[str, str | Expr]] = [
        ("QR_PROJECT", config.name),
        ("QR_STAGE", stage.name),
        ("QR_SSM_PATH", names.ssm_path),
    ]
    if http:
        env.append(("QR_BASE_URL", Expr("local.base_url")))
    if queues:
        env.append(("QR_QUEUE_URL_PREFIX", Expr("local.queue_url_prefix")))
    if _jobs(manifest, names) is not None:
        env.append(("QR_JOBS_TABLE", Expr("aws_dynamodb_table.jobs.name")))
    if websocket:
        env.append(("QR_CONNECTIONS_TABLE", Expr("aws_dynamodb_table.connections.name")))
        env.append(("QR_WS_ENDPOINT", Expr("local.ws_endpoint")))
    if flow:
        env.append(("QR_FLOW_TABLE", Expr("aws_dynamodb_table.flow.name")))
    env.extend(sorted(stage.env.items()))
    return Function(
        name=names.function,
        alias=ALIAS,
        runtime=config.runtime,
        architecture=config.architecture,
        memory=stage.memory or config.memory,
        timeout=_function_timeout(manifest),
        handler=HANDLER,
        bundle=BUNDLE,
        env=tuple(env),
        handler_timeouts=tuple(_handler_timeouts(manifest)),
    )


def _queues(manifest: Manifest, names: Names, function_timeout: int) -> Iterable[Queue]:
    taken = {"schedules_dlq"}
    for queue in manifest.queues:
        base = queue.name.removesuffix(".fifo")
        suffix = ".fifo" if queue.fifo else ""
        batch_size = queue.config.batch_size
        # A window is only needed (and only allowed) on standard queues taking batches over 10.
        window = 1 if not queue.fifo and batch_size > 10 else None
        visibility = VISIBILITY_FACTOR * function_timeout
        yield Queue(
            name=queue.name,
            file=queue.file,
            label=label(queue.name.replace(".fifo", "_fifo"), taken, ("", "_dlq")),
            fifo=queue.fifo,
            sqs_name=f"{names.prefix}-{base}{suffix}",
            dlq_name=f"{names.prefix}-{base}-dlq{suffix}",
            job_timeout=queue.config.timeout,
            batch_seconds=batch_seconds(queue.config, fifo=queue.fifo),
            waves=batch_waves(queue.config, fifo=queue.fifo),
            visibility_timeout=min(VISIBILITY_MAX, visibility + (window or 0)),
            max_receive_count=queue.config.max_attempts,
            batch_size=batch_size,
            batching_window=window,
            maximum_concurrency=max(2, queue.config.concurrency),
        )


def _flow(manifest: Manifest, names: Names) -> FlowTable | None:
    """The flow table: for rate limits, and for debounce, which any push to a standard queue
    may use (``queues[name].debounce(key, seconds)`` is decided in code, not in config)."""
    limits = tuple(
        (q.name, q.config.rate_limit.describe()) for q in manifest.queues if q.config.rate_limit
    )
    if not limits and all(q.fifo for q in manifest.queues):
        return None
    return FlowTable(names.flow_table, CONNECTION_TTL_ATTRIBUTE, limits)


def api_gateway_path(route: Route) -> str:
    """``/files/{path:path}`` -> ``/files/{path+}`` (API Gateway's greedy parameter)."""
    return re.sub(r"\{([^}:]+):path\}", r"{\1+}", route.pattern)


def _http(
    manifest: Manifest, names: Names, config: ProjectConfig, stage: Stage, domain: Domain | None
) -> HttpApi | None:
    if not manifest.routes:
        return None
    throttle = config.throttle_of(stage)
    disable: bool | Expr = False
    if domain and not stage.serves_default_endpoint:
        # Without a zone the domain serves only once its certificate is issued; until then the
        # execute-api URL is the only way in.
        disable = domain.ready or True
    taken: set[str] = set()
    routes = tuple(
        HttpRoute(
            label=label(
                f"http_{api_gateway_path(r).replace('+', '') if r.path != '/' else 'root'}", taken
            ),
            route_key=f"ANY {api_gateway_path(r)}",
            file=r.file,
        )
        for r in manifest.routes
    )
    return HttpApi(
        name=names.http_api,
        routes=routes,
        cors=_api_cors(manifest.routes),
        integration_timeout_ms=HTTP_INTEGRATION_TIMEOUT_MS,
        access_log_group=names.http_access_log_group,
        throttle_rate=int(throttle.rate) if float(throttle.rate).is_integer() else throttle.rate,
        throttle_burst=throttle.burst,
        disable_execute_api_endpoint=disable,
    )


def _api_cors(routes: tuple[Route, ...]) -> Cors | None:
    """API-level CORS when every route has the same setting; otherwise the app answers CORS.

    API Gateway then answers preflight requests itself (no invocation). Credentials with a
    ``*`` origin are left to the app, which echoes the request's origin (API Gateway refuses
    that combination).
    """
    settings: set[RouteCors] = {r.config.cors for r in routes}
    if len(settings) != 1:
        return None
    cors = settings.pop()
    if not cors.enabled or (cors.credentials and "*" in cors.origins):
        return None
    methods = sorted({m for r in routes for m in r.methods} | {"OPTIONS"})
    return Cors(
        allow_origins=cors.origins,
        allow_methods=tuple(methods),
        allow_headers=cors.headers,
        expose_headers=cors.expose_headers,
        max_age=cors.max_age,
        allow_credentials=cors.credentials,
    )


def _websocket(manifest: Manifest, names: Names, stage: Stage) -> WebSocketApi | None:
    if manifest.socket is None:
        return None
    taken = {"ws_connect", "ws_disconnect", "ws_default"}
    routes = [
        WsRoute("ws_connect", "$connect", None),
        WsRoute("ws_disconnect", "$disconnect", None),
        WsRoute("ws_default", "$default", next(
            (h.file for h in manifest.socket.handlers if h.action == "$default"), None
        )),
    ]  # fmt: skip
    for handler in sorted(manifest.socket.handlers, key=lambda h: h.action):
        if handler.action != "$default":
            routes.append(
                WsRoute(label(f"ws_action_{handler.action}", taken), handler.action, handler.file)
            )
    return WebSocketApi(
        name=names.ws_api,
        stage=stage.name,
        routes=tuple(routes),
        table=names.connections_table,
        ttl_attribute=CONNECTION_TTL_ATTRIBUTE,
    )


def _schedules(manifest: Manifest, names: Names) -> Schedules | None:
    taken: set[str] = set()
    items = []
    for schedule in manifest.schedules:
        expression = schedule.expression.aws_expression()
        if expression is None:
            continue  # "never": the handler exists (qr dev schedule NAME runs it), no trigger
        items.append(
            Schedule(
                name=schedule.name,
                file=schedule.file,
                label=label(schedule.name, taken),
                expression=expression,
                input=json.dumps({"qr": "schedule", "name": schedule.name}, separators=(",", ":")),
            )
        )
    if not items:
        return None
    return Schedules(
        group=names.schedule_group,
        role=names.scheduler_role,
        dlq_name=names.schedules_dlq,
        items=tuple(items),
        retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
        event_age=SCHEDULE_EVENT_AGE,
    )


def _domain(stage: Stage, *, has_socket: bool) -> Domain | None:
    if not stage.domain:
        return None
    return Domain(
        name=stage.domain,
        ws_name=f"ws.{stage.domain}" if has_socket else None,
        zone_id=stage.zone,
    )


def _when_ready(domain: Domain, url: str, otherwise: str) -> Expr:
    if domain.ready is None:
        return Expr(f'"{url}"')
    return Expr(f'{domain.ready} ? "{url}" : {otherwise}')


def _urls(http: HttpApi | None, websocket: WebSocketApi | None, domain: Domain | None) -> Urls:
    http_url = Expr("aws_apigatewayv2_api.http.api_endpoint") if http else None
    ws_url = Expr("aws_apigatewayv2_stage.ws.invoke_url") if websocket else None
    if domain and http_url:
        http_url = _when_ready(domain, f"https://{domain.name}", http_url)
    if domain and ws_url and domain.ws_name:
        ws_url = _when_ready(domain, f"wss://{domain.ws_name}", ws_url)
    return Urls(base=http_url, ws=ws_url)


def _locals(
    config: ProjectConfig,
    stage: Stage,
    names: Names,
    urls: Urls,
    websocket: WebSocketApi | None,
) -> tuple[tuple[str, object], ...]:
    tags = ", ".join(f'"{k}" = "{v}"' for k, v in _tags(config, stage))
    values: list[tuple[str, object]] = [
        ("project", config.name),
        ("stage", stage.name),
        ("prefix", names.prefix),
        ("bundle", Expr(f'"{BUNDLE}"')),
        ("account_id", Expr("data.aws_caller_identity.current.account_id")),
        ("partition", Expr("data.aws_partition.current.partition")),
        ("region", Expr("data.aws_region.current.region")),
        ("dns_suffix", Expr("data.aws_partition.current.dns_suffix")),
        ("tags", Expr(f"merge(var.tags, {{ {tags} }})")),
        (
            "queue_url_prefix",
            Expr('"https://sqs.${local.region}.${local.dns_suffix}/${local.account_id}/${local.prefix}-"'),
        ),
    ]  # fmt: skip
    if urls.base:
        values.append(("base_url", urls.base))
    if websocket:
        values.append(
            (
                "ws_endpoint",
                Expr(
                    '"https://${aws_apigatewayv2_api.ws.id}.execute-api.${local.region}.'
                    '${local.dns_suffix}/${local.stage}"'
                ),
            )
        )
    return tuple(values)


def _tags(config: ProjectConfig, stage: Stage) -> tuple[tuple[str, str], ...]:
    return (("qr:project", config.name), ("qr:stage", stage.name), ("managed-by", "qr"))


def _backend(config: ProjectConfig, stage: Stage) -> Backend | None:
    if config.backend is None:
        return None
    prefix = config.backend.key_prefix.strip("/")
    key = f"{prefix}/{config.name}/{stage.name}/terraform.tfstate".lstrip("/")
    return Backend(bucket=config.backend.bucket, key=key, region=config.backend.region)


def _resource_size(resource: str | Expr) -> int:
    """Length of a policy resource once Terraform fills it in, erring high."""
    if not isinstance(resource, Expr):
        return len(resource)
    if not resource.startswith('"'):
        return _REFERENCE_SIZE
    text = resource.strip('"')
    for part, size in _ARN_PARTS.items():
        text = text.replace(part, "x" * size)
    return len(re.sub(r"\$\{[^}]*\}", "x" * _REFERENCE_SIZE, text))


def _queue_arn_size(name: str) -> int:
    return len("arn::sqs:::") + sum(_ARN_PARTS.values()) + len(name)


_QUEUE_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)


def _queue_statement(sid: str, queues: Iterable[Queue]) -> Statement:
    """Every queue (and its DLQ) by its own ARN: a ``<prefix>-*`` wildcard would also match another stage whose
    name starts with this one's (``prod-eu`` for ``prod``) and another project whose name ends
    like this one's prefix (``app-prod`` for project ``app``, stage ``prod``)."""
    chosen = tuple(queues)
    # Each queue's dead-letter queue too: the runtime sends a job whose payload fails validation
    # there itself (SendMessage).
    resources = tuple(arn for q in chosen for arn in (q.arn, q.dlq_arn))
    sizes = tuple(_queue_arn_size(n) for q in chosen for n in (q.sqs_name, q.dlq_name))
    return Statement(sid, _QUEUE_ACTIONS, resources, sizes)


def _with_queue_policies(model: TerraformModel, statements: list[Statement]) -> TerraformModel:
    """The queue statement inline when the role's inline policy stays within IAM's 10,240
    characters, else split over managed policies of at most 6,144 characters each."""
    if not model.queues:
        return replace(model, statements=tuple(statements))
    # After Logs and Settings, where it has always been (a stable diff for existing stages).
    queues = _queue_statement("Queues", model.queues)
    inline = replace(model, statements=(*statements[:2], queues, *statements[2:]))
    if inline.policy_size <= ROLE_POLICY_SIZE_MAX:
        return inline
    chunks: list[list[Queue]] = [[]]
    for queue in model.queues:
        candidate = _queue_statement("Queues", [*chunks[-1], queue])
        if chunks[-1] and 40 + candidate.size > MANAGED_POLICY_SIZE_MAX:
            chunks.append([])
        chunks[-1].append(queue)
    policies = tuple(
        ManagedPolicy(
            label=f"queues_{index}",
            name=fit_name(f"{model.names.prefix}-queues-{index}", 128),
            statement=_queue_statement(f"Queues{index}", chunk),
        )
        for index, chunk in enumerate(chunks, start=1)
    )
    return replace(model, statements=tuple(statements), managed_policies=policies)


def _with_statements(model: TerraformModel) -> TerraformModel:
    statements = [
        Statement(
            "Logs",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            (Expr('"${aws_cloudwatch_log_group.function.arn}:*"'),),
        ),
        Statement(
            "Settings",
            ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"),
            (
                Expr(f'"arn:${{local.partition}}:ssm:${{local.region}}:${{local.account_id}}:parameter{model.names.ssm_path.rstrip("/")}"'),
                Expr(f'"arn:${{local.partition}}:ssm:${{local.region}}:${{local.account_id}}:parameter{model.names.ssm_path}*"'),
            ),
        ),
    ]  # fmt: skip
    if model.jobs:
        # Start and finish are conditional updates, progress too; reads for jobs.get/wait.
        statements.append(
            Statement(
                "JobState",
                ("dynamodb:GetItem", "dynamodb:UpdateItem"),
                (model.jobs.arn,),
            )
        )
    if model.websocket:
        statements.append(
            Statement(
                "Connections",
                (
                    "dynamodb:BatchWriteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ),
                (
                    Expr("aws_dynamodb_table.connections.arn"),
                    Expr('"${aws_dynamodb_table.connections.arn}/index/*"'),
                ),
            )
        )
        statements.append(
            Statement(
                "WebSocketCallbacks",
                ("execute-api:ManageConnections",),
                (Expr(f'"${{aws_apigatewayv2_api.ws.execution_arn}}/{model.websocket.stage}/*/@connections/*"'),),
            )
        )  # fmt: skip
    if model.flow:
        statements.append(
            Statement(
                "FlowControl",
                (
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ),
                (Expr("aws_dynamodb_table.flow.arn"),),
            )
        )
    if model.schedules:
        statements.append(
            Statement(
                "ScheduleFailures",
                ("sqs:SendMessage",),
                (Expr("aws_sqs_queue.schedules_dlq.arn"),),
            )
        )
    return _with_queue_policies(model, statements)
