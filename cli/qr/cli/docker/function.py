"""The project's function under ``qr dev --docker``: bundle, image, local AWS endpoints, pool.

``DockerFunction.start()`` runs these stages (blocking; the dev server calls it before serving):

1. connect to the engine (clear errors when Docker is missing or stopped);
2. build the **deploy bundle** (``qr.cli.bundle``) for the host's architecture and unpack it into
   ``.qr/docker/task-<n>/``, which the containers mount read-only at ``/var/task``;
3. ensure the function image (base image + ``awslambdaric`` + boto3, which Lambda's runtime
   provides and the bundle leaves out); built only when its inputs change;
4. serve the local AWS endpoints the production adapters call (``aws_local``);
5. start the warm pool, its containers running ``qr.runtime.aws.entry.handler`` with the
   environment Terraform would set (``QR_QUEUE_URL_PREFIX``, ``QR_WS_ENDPOINT``,
   ``QR_CONNECTIONS_TABLE``, ``QR_JOBS_TABLE``, ``QR_FLOW_TABLE``, ``QR_SSM_PATH`` ...) pointed
   at those endpoints.
   The dev environment (``.env``, ``--env``) is not passed as container variables: it is served
   as the SSM parameters under ``QR_SSM_PATH``, which the entry point loads at cold start as in
   production.

A container that crashes on init is reported with its output and the server keeps running: the
next invocation tries again. ``reload(manifest)`` repeats stage 2 and restarts the containers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from qr.cli.docker.aws_local import LocalAws, LocalAwsServer
from qr.cli.docker.engine import connect, listen_address
from qr.cli.docker.events import ACCOUNT
from qr.cli.docker.flow_table import LocalFlowTable
from qr.cli.docker.image import (
    BuiltImage,
    ImageBuilder,
    ImageSpec,
    default_base_image,
    host_architecture,
)
from qr.cli.docker.jobs_table import LocalJobsTable
from qr.cli.docker.pool import PROJECT_LABEL, ContainerPool, LogLine, PoolConfig
from qr.runtime.aws.batch import TRACEBACKS_VARIABLE
from qr.runtime.aws.entry import ACCESS_LOG_VARIABLE
from qr.runtime.local.flow import LocalSteps
from qr.runtime.local.private import private_dir
from qr.runtime.local.worker import LocalQueuePort
from qr.runtime.manifest import Manifest
from qr.runtime.ports import Platform

ENTRY_HANDLER = "qr.runtime.aws.entry.handler"
STAGE = "dev"
WORK_DIR = Path(".qr/docker")
HTTP_TIMEOUT = 30.0
"""API Gateway's integration timeout; route timeouts (max 29 s) are enforced inside."""
log = logging.getLogger("qr.docker")

Package = Callable[[Manifest, Path], Path]
"""``package(manifest, work_dir) -> task dir``: the code the containers mount at /var/task."""


@dataclasses.dataclass
class DockerSettings:
    base_image: str | None = None
    """Default: ``QR_DOCKER_BASE_IMAGE``, else qr.yaml ``docker.base_image``, else the AWS
    Lambda image of the project's runtime."""
    network: Literal["host", "bridge"] = "bridge"
    concurrency: int = 2
    """Warm containers (how many invocations run at once)."""
    environment: Mapping[str, str] | Callable[[], Mapping[str, str]] = dataclasses.field(
        default_factory=dict
    )
    """The dev environment (``.env`` and ``--env``), served to the containers through SSM; a
    callable is read at every cold start (a ``.env`` change reaches the restarted containers)."""

    def dev_environment(self) -> Mapping[str, str]:
        environment = self.environment
        return environment() if callable(environment) else environment

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> DockerSettings:
        env = os.environ if environ is None else environ
        network = env.get("QR_DOCKER_NETWORK", "bridge")
        settings = cls(
            base_image=env.get("QR_DOCKER_BASE_IMAGE") or None,
            network="host" if network == "host" else "bridge",
            concurrency=int(env.get("QR_DOCKER_CONCURRENCY") or 2),
        )
        return dataclasses.replace(settings, **kwargs)


def bundle_task(manifest: Manifest, work_dir: Path) -> Path:
    """Build the deploy bundle for this machine's architecture and unpack it as a task dir."""
    from qr.cli.bundle import build_bundle

    arch = "arm64" if host_architecture() == "aarch64" else "x86_64"
    local = dataclasses.replace(
        manifest, config=dataclasses.replace(manifest.config, architecture=arch)
    )
    bundle = build_bundle(local, manifest.config.stage().name, work_dir)
    number = 1 + max(
        (int(p.name[5:]) for p in work_dir.glob("task-*") if p.name[5:].isdigit()), default=0
    )
    task = work_dir / f"task-{number}"
    with zipfile.ZipFile(bundle.path) as archive:
        archive.extractall(task)
    for old in work_dir.glob("task-*"):
        if old != task and old.name[5:].isdigit() and int(old.name[5:]) < number - 1:
            shutil.rmtree(old, ignore_errors=True)
    return task


class DockerFunction:
    def __init__(
        self,
        manifest: Manifest,
        platform: Platform,
        settings: DockerSettings,
        *,
        client: Any = None,
        package: Package = bundle_task,
        image_cache: Path | None = None,
        extend: Callable[[str, float], bool] = lambda receipt, seconds: False,
        handler: str = ENTRY_HANDLER,
    ) -> None:
        self.manifest = manifest
        self.platform = platform
        self.settings = settings
        self.client = client
        self.package = package
        self.image_cache = image_cache
        self.extend = extend
        self.handler = handler
        self.work_dir = manifest.root / WORK_DIR
        self.image: BuiltImage | None = None
        self.pool: ContainerPool | None = None
        self.aws_server: LocalAwsServer | None = None
        self._pool_config: PoolConfig | None = None
        self._lifecycle = threading.Lock()
        config = manifest.config
        self.function_name = f"{config.name}-{STAGE}"
        self.queue_prefix = f"{self.function_name}-"
        self.ssm_path = f"/qr/{config.name}/{STAGE}/"
        self.jobs_table = f"{self.function_name}-jobs"
        self.flow_table = f"{self.function_name}-flow"
        queues = platform.queues
        self._steps = LocalSteps(queues.engine) if isinstance(queues, LocalQueuePort) else None
        """The engine's flow state, when the platform's queues are its (the dev server's)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, start_pool: bool = True) -> None:
        """Stages 1-5; with ``start_pool=False`` stage 5 waits for ``start_pool(loop)``."""
        if self.client is None:
            self.client = connect()
        config = self.manifest.config
        private_dir(self.work_dir)  # .qr/docker: 0700 (the task dirs in it stay readable:
        # each is mounted at /var/task for the container's user)
        log.info("building the deploy bundle for the containers")
        task = self.package(self.manifest, self.work_dir)
        base = (
            self.settings.base_image
            or config.docker_base_image
            or default_base_image(config.python_version)
        )
        builder = ImageBuilder(self.client, self.image_cache, log=log.info)
        self.image = builder.ensure(ImageSpec(config.python_version, base, requirements=("boto3",)))
        listen = listen_address(self.client, self.settings.network)
        jobs = self.platform.jobs
        aws = LocalAws(
            self.platform.queues,
            self.platform.sockets,
            self.queue_prefix,
            lambda receipt, seconds: self.extend(receipt, seconds),  # the current worker's
            ssm_path=self.ssm_path,
            parameters=self.settings.dev_environment,
            region=config.region,
            jobs=None if jobs is None else LocalJobsTable(self.jobs_table, jobs),
            flow=None if self._steps is None else LocalFlowTable(self.flow_table, self._steps),
        )
        self.aws_server = LocalAwsServer(aws, listen)
        self.aws_server.start()
        self._pool_config = PoolConfig(
            self.image.tag,
            task,
            handler=self.handler,
            size=self.settings.concurrency,
            timeout=HTTP_TIMEOUT,
            function_name=self.function_name,
            memory_mb=config.memory,
            region=config.region,
            environment=self.environment(),
            network=self.settings.network,
            listen=listen,
            labels={PROJECT_LABEL: str(self.manifest.root)},
        )
        if start_pool:
            self.start_pool()

    def start_pool(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Stage 5 (blocking: not on ``loop``): the warm containers, their Runtime API served on
        ``loop`` - the dev server's own, so its handlers reach them with no thread hop - or on
        a loop of the pool's own."""
        assert self._pool_config is not None and self.image is not None, "start() first"
        self.pool = ContainerPool(self.client, self._pool_config, on_log=_log_line, loop=loop)
        self.pool.start()
        log.info(
            "%d warm container(s) of %s running %s",
            self.pool.warm_count(),
            self.image.tag,
            self.handler,
        )
        self._report_crash()

    def reload(self, manifest: Manifest) -> None:
        """New code: a new task dir, then fresh containers (one reload at a time)."""
        with self._lifecycle:
            self.manifest = manifest
            if self.pool is None:
                return
            started = time.perf_counter()
            self.pool.config.task_dir = self.package(manifest, self.work_dir)
            self.pool.restart()
            elapsed = (time.perf_counter() - started) * 1000
            log.info("containers restarted with the new code in %.0f ms", elapsed)
            self._report_crash()

    def close(self) -> None:
        with self._lifecycle:
            if self.pool is not None:
                self.pool.close()
                self.pool = None
            if self.aws_server is not None:
                self.aws_server.close()
                self.aws_server = None

    def environment(self) -> dict[str, str]:
        """What Terraform sets on the function, pointed at the local endpoints."""
        assert self.aws_server is not None
        config = self.manifest.config
        host = "127.0.0.1" if self.settings.network == "host" else "host.docker.internal"
        endpoint = self.aws_server.url(host)
        base_url = self.platform.base_url
        if self.settings.network == "bridge":
            base_url = base_url.replace("localhost", "host.docker.internal")
        return {
            "QR_PROJECT": config.name,
            "QR_STAGE": STAGE,
            "QR_QUEUE_URL_PREFIX": f"{endpoint}/sqs/{ACCOUNT}/{self.queue_prefix}",
            "QR_CONNECTIONS_TABLE": f"{self.function_name}-connections",
            # always, unlike Terraform (only when a queue keeps results): plain qr dev always
            # keeps job state, so jobs.get() answers the same with and without --docker
            "QR_JOBS_TABLE": self.jobs_table,
            # errors keep their traceback, as under plain qr dev (QR_JOB_TRACEBACKS=off in .env
            # for the stage's default)
            TRACEBACKS_VARIABLE: "on",
            # whenever the dev server's engine is there (Terraform: when a queue has a rate limit
            # or is a standard one): debounce, rate limits and chain steps as under plain qr dev
            **({} if self._steps is None else {"QR_FLOW_TABLE": self.flow_table}),
            "QR_WS_ENDPOINT": f"{endpoint}/ws",
            "QR_BASE_URL": base_url,
            "QR_SSM_PATH": self.ssm_path,
            ACCESS_LOG_VARIABLE: "off",  # the dev server prints its own access line
            "AWS_ENDPOINT_URL_SQS": f"{endpoint}/sqs",
            "AWS_ENDPOINT_URL_DYNAMODB": f"{endpoint}/dynamodb",
            "AWS_ENDPOINT_URL_SSM": f"{endpoint}/ssm",
            "AWS_ACCESS_KEY_ID": "qr-dev",
            "AWS_SECRET_ACCESS_KEY": "qr-dev",
        }

    def queue_arn(self, queue: str) -> str:
        region = self.manifest.config.region
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{self.queue_prefix}{queue}"

    async def invoke(
        self, event: Any, *, request_id: str | None = None, timeout: float | None = None
    ) -> Any:
        if self.pool is None:
            raise RuntimeError("the Docker function is not started")
        return await self.pool.ainvoke(event, request_id=request_id, timeout=timeout)

    def _report_crash(self) -> None:
        pool = self.pool
        if pool is not None and pool.warm_count() == 0 and pool.last_crash:
            output = "\n".join(pool.last_crash[-20:])
            log.error(
                "the function's container crashed during init (the server keeps running; "
                "fix the code and save to retry):\n%s",
                output,
            )


def _log_line(line: LogLine) -> None:
    """A container's output line on the dev console, with the request id it belongs to.

    qr's JSON log records are shown as ``LEVEL logger: message`` under their own request id;
    the function's HTTP access lines are left out (the dev server prints its own for each request).
    The runtime interface client writes each record as is when no Lambda telemetry pipe is
    there; qr's records end with a newline (``jsonlog``), but a formatter of the user's own may
    not, so several records can arrive as one line: they are split apart here.
    """
    for part in _RECORD_START.split(line.text):
        record = _json_record(part)
        if record is None:
            log.info("%s %s", line.request_id or "init", part)
            continue
        if _duplicate(record):
            continue
        request_id = record.get("request_id") or line.request_id or "init"
        text = f"{record.get('level', 'INFO')} {record.get('logger', '')}: {record['message']}"
        if record.get("error"):
            text += "\n" + str(record["error"])
        level = logging.getLevelName(str(record.get("level", "INFO")))
        log.log(level if isinstance(level, int) else logging.INFO, "%s %s", request_id, text)


def _duplicate(record: dict[str, Any]) -> bool:
    """Access lines the dev server prints itself, and botocore's chatter about its setup."""
    logger, level = str(record.get("logger", "")), record.get("level")
    return level == "INFO" and (logger == "qr.http" or logger.startswith("botocore."))


_RECORD_START = re.compile(r'(?<=\})(?=\{"time": )')


def _json_record(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "message" in record else None
