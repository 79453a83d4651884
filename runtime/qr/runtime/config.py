"""``qr.yaml``: the project's configuration, parsed and validated with line numbers.

Every field has a default, so an empty file (or none) is a valid project. Unknown keys are errors
that list the known ones. Problems are collected, not raised one at a time, so a user sees every
mistake in the file at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from qr.runtime._suggest import did_you_mean
from qr.runtime.errors import Problem, ProjectError

CONFIG_FILE = "qr.yaml"
RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")
ARCHITECTURES = ("arm64", "x86_64")
DEFAULT_STAGE = "production"
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
STAGE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


THROTTLE_RATE_MAX = 10000
THROTTLE_BURST_MAX = 5000
"""API Gateway's default account quotas per Region (requests per second, burst), which a stage's
default route throttling cannot exceed
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html,
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""


@dataclass(frozen=True)
class Throttle:
    """The HTTP API stage's default route throttling (``throttle: {rate, burst}``)."""

    rate: float = 1000
    """Steady requests per second."""
    burst: int = 2000
    """Requests API Gateway accepts at once above the steady rate (the token bucket's size)."""


@dataclass(frozen=True)
class Stage:
    name: str
    domain: str | None = None
    zone: str | None = None
    """Route53 hosted zone id for ``domain``; without it ``qr domain`` prints the records to add."""
    env: Mapping[str, str] = field(default_factory=dict)
    memory: int | None = None
    """Overrides the project's ``memory`` for this stage."""
    throttle: Throttle | None = None
    """The project's ``throttle`` with this stage's own ``throttle`` keys over it (``None``: the
    stage was built by hand; ``ProjectConfig.throttle_of`` then gives the project's)."""
    default_endpoint: bool | None = None
    """Keep the HTTP API's ``execute-api`` URL next to ``domain`` (default: off with a domain)."""

    @property
    def serves_default_endpoint(self) -> bool:
        return self.default_endpoint if self.default_endpoint is not None else not self.domain


@dataclass(frozen=True)
class S3Backend:
    bucket: str
    region: str
    key_prefix: str = "qr"
    """State key is ``<key_prefix>/<name>/<stage>/terraform.tfstate``."""


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    runtime: str = "python3.12"
    architecture: str = "arm64"
    region: str = "us-east-1"
    memory: int = 512
    throttle: Throttle = field(default_factory=Throttle)
    log_retention_days: int = 30
    stages: Mapping[str, Stage] = field(
        default_factory=lambda: {DEFAULT_STAGE: Stage(DEFAULT_STAGE)}
    )
    backend: S3Backend | None = None
    docker_base_image: str | None = None
    """``docker: {base_image: ...}``: the image ``qr dev --docker`` builds on."""

    @property
    def python_version(self) -> str:
        """``"3.12"`` for ``runtime: python3.12``."""
        return self.runtime.removeprefix("python")

    def throttle_of(self, stage: Stage) -> Throttle:
        return stage.throttle or self.throttle

    def stage(self, name: str | None = None) -> Stage:
        """The named stage (default ``production``); unknown names get a clear error."""
        name = name or DEFAULT_STAGE
        if name in self.stages:
            return self.stages[name]
        if name == DEFAULT_STAGE:
            return Stage(DEFAULT_STAGE)
        known = ", ".join(sorted(self.stages))
        raise ProjectError(
            [
                Problem(
                    CONFIG_FILE,
                    None,
                    f"stage {name!r} is not defined.{did_you_mean(name, self.stages)}",
                    f"add it under 'stages:' in qr.yaml (known stages: {known})",
                )
            ]
        )


# Retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


def default_name(root: Path) -> str:
    """A valid project name derived from a directory name."""
    name = re.sub(r"[^a-z0-9-]+", "-", root.resolve().name.lower()).strip("-")[:40].strip("-")
    return name or "app"


def load_config(root: Path) -> ProjectConfig:
    """Parse ``root/qr.yaml``; a missing file means all defaults."""
    path = root / CONFIG_FILE
    if not path.exists():
        return ProjectConfig(name=default_name(root))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ProjectError(
            [
                Problem(
                    CONFIG_FILE,
                    line,
                    f"is not UTF-8 text: byte {exc.start} is 0x{raw[exc.start]:02x}",
                    "save qr.yaml as UTF-8 (most editors have an encoding setting)",
                )
            ]
        ) from None
    return parse_config(text, default_name=default_name(root))


def parse_config(text: str, *, default_name: str = "app") -> ProjectConfig:
    parser = _Parser()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProjectError(
            [Problem(CONFIG_FILE, line, f"invalid YAML: {problem}", "fix the YAML syntax")]
        ) from None
    config = parser.project(node, default_name)
    if parser.problems or config is None:
        raise ProjectError(parser.problems)
    return config


_Node = yaml.Node


class _Parser:
    """Walks the composed YAML tree so that every problem has a line number."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.stage_throttles: dict[str, dict[str, Any]] = {}

    def fail(self, node: _Node | None, message: str, hint: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(Problem(CONFIG_FILE, line, message, hint))

    def mapping(self, node: _Node | None, where: str, known: Mapping[str, str]) -> dict[str, _Node]:
        """Keys of a mapping node, reporting unknown ones; ``known`` maps key -> description."""
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node, f"{where} must be a mapping of keys to values", "write key: value lines"
            )
            return {}
        result: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if known and key not in known:
                listing = ", ".join(known)
                self.fail(
                    key_node,
                    f"unknown key {key!r} in {where}.{did_you_mean(key, known)}",
                    f"use one of the known keys: {listing}",
                )
                continue
            if key in result:
                self.fail(key_node, f"key {key!r} appears twice in {where}", "keep only one")
            result[key] = value_node
        return result

    def scalar(self, node: _Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(
                node,
                f"{where} must be a single value, not a list or mapping",
                f"write {where.rsplit('.', 1)[-1]}: VALUE on one line",
            )
            return None
        return yaml.safe_load(yaml.serialize(node))

    def string(
        self, node: _Node, where: str, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str | None:
        value = self.scalar(node, where)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(node, f"{where} must be a string, got {value!r}", hint)
            return None
        if pattern is not None and not pattern.match(value):
            self.fail(node, f"{where} {value!r} is not valid", hint)
            return None
        return value

    def choice(self, node: _Node, where: str, choices: tuple[str, ...]) -> str | None:
        value = self.scalar(node, where)
        if value not in choices:
            self.fail(
                node,
                f"{where} {value!r} is not supported.{did_you_mean(str(value), choices)}",
                f"use one of: {', '.join(choices)}",
            )
            return None
        return str(value)

    def integer(self, node: _Node, where: str, low: int, high: int) -> int | None:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(
                node,
                f"{where} must be a whole number from {low} to {high}, got {value!r}",
                f"use a whole number from {low} to {high}",
            )
            return None
        return value

    def project(self, node: _Node | None, default_name: str) -> ProjectConfig | None:
        keys = self.mapping(node, "qr.yaml", _PROJECT_KEYS)
        values: dict[str, Any] = {"name": default_name}
        readers: dict[str, Callable[[_Node], Any]] = {
            "name": lambda n: self.string(
                n,
                "name",
                NAME_RE,
                "use 1-40 characters of a-z, 0-9 and '-' (it prefixes every cloud resource)",
            ),
            "runtime": lambda n: self.choice(n, "runtime", RUNTIMES),
            "architecture": lambda n: self.choice(n, "architecture", ARCHITECTURES),
            "region": lambda n: self.string(
                n, "region", REGION_RE, "use an AWS region such as us-east-1"
            ),
            "memory": lambda n: self.integer(n, "memory", 128, 10240),
            "throttle": lambda n: Throttle(**self.throttle(n, "throttle")),
            "log_retention_days": self.retention,
            "stages": self.stages,
            "terraform": self.terraform,
            "docker": self.docker,
        }
        for key, value_node in keys.items():
            value = readers[key](value_node)
            if value is not None:
                values[key] = value
        if "stages" in values and not values["stages"]:
            del values["stages"]
        project_throttle = values.get("throttle", Throttle())
        for name, stage_throttle in self.stage_throttles.items():
            if name in values.get("stages", {}):
                merged = replace(project_throttle, **stage_throttle)
                values["stages"][name] = replace(values["stages"][name], throttle=merged)
        backend = values.pop("terraform", None)
        docker_image = values.pop("docker", None)
        return ProjectConfig(**values, backend=backend, docker_base_image=docker_image)

    def retention(self, node: _Node) -> int | None:
        value = self.scalar(node, "log_retention_days")
        if value not in LOG_RETENTION_DAYS:
            self.fail(
                node,
                f"log_retention_days {value!r} is not a CloudWatch Logs retention period",
                f"use one of: {', '.join(map(str, LOG_RETENTION_DAYS))}",
            )
            return None
        return int(value)

    def stages(self, node: _Node) -> dict[str, Stage]:
        stages: dict[str, Stage] = {}
        for name, stage_node in self.mapping(node, "stages", {}).items():
            if not STAGE_RE.match(name):
                self.fail(
                    stage_node,
                    f"stage name {name!r} is not valid",
                    "use 1-20 characters of a-z, 0-9 and '-'",
                )
                continue
            keys = self.mapping(stage_node, f"stages.{name}", _STAGE_KEYS)
            stage: dict[str, Any] = {"name": name}
            if "domain" in keys:
                stage["domain"] = self.string(
                    keys["domain"],
                    f"stages.{name}.domain",
                    DOMAIN_RE,
                    "use a lower-case host name such as api.example.com",
                )
            if "zone" in keys:
                stage["zone"] = self.string(
                    keys["zone"],
                    f"stages.{name}.zone",
                    re.compile(r"^Z[A-Z0-9]{1,31}$"),
                    "use a Route53 hosted zone id such as Z0123456789ABCDEFGHIJ",
                )
            if "memory" in keys:
                stage["memory"] = self.integer(keys["memory"], f"stages.{name}.memory", 128, 10240)
            if "env" in keys:
                stage["env"] = self.env(keys["env"], f"stages.{name}.env")
            if "throttle" in keys:
                # merged over the project's throttle once the whole file is read
                self.stage_throttles[name] = self.throttle(
                    keys["throttle"], f"stages.{name}.throttle"
                )
            if "default_endpoint" in keys:
                stage["default_endpoint"] = self.boolean(
                    keys["default_endpoint"], f"stages.{name}.default_endpoint"
                )
                if stage["default_endpoint"] is False and "domain" not in keys:
                    self.fail(
                        keys["default_endpoint"],
                        f"stages.{name}.default_endpoint is false but the stage has no domain: "
                        "the HTTP API would have no URL",
                        f"add stages.{name}.domain or remove default_endpoint",
                    )
            stages[name] = Stage(**stage)
        return stages

    def boolean(self, node: _Node, where: str) -> bool | None:
        value = self.scalar(node, where)
        if not isinstance(value, bool):
            self.fail(node, f"{where} must be true or false, got {value!r}", "write true or false")
            return None
        return value

    def throttle(self, node: _Node, where: str) -> dict[str, Any]:
        """The ``rate`` and ``burst`` given (valid ones only; problems are reported)."""
        keys = self.mapping(
            node,
            where,
            {"rate": "steady requests per second", "burst": "requests at once above the rate"},
        )
        given: dict[str, Any] = {}
        if "rate" in keys:
            value = self.scalar(keys["rate"], f"{where}.rate")
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and 0 < value <= THROTTLE_RATE_MAX
            ):
                given["rate"] = float(value)
            else:
                self.fail(
                    keys["rate"],
                    f"{where}.rate must be requests per second above 0 and at most "
                    f"{THROTTLE_RATE_MAX} (API Gateway's default account quota), got {value!r}",
                    "a stage cannot be throttled above the account's limit; ask AWS for a "
                    "higher quota first if you need more",
                )
        if "burst" in keys:
            burst = self.integer(keys["burst"], f"{where}.burst", 1, THROTTLE_BURST_MAX)
            if burst is not None:
                given["burst"] = burst
        return given

    def env(self, node: _Node, where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{where} must be a mapping of NAME: value", "write NAME: value lines")
            return env
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if not ENV_NAME_RE.match(key):
                self.fail(
                    key_node,
                    f"{where}: {key!r} is not a valid environment variable name",
                    "use letters, digits and '_'",
                )
                continue
            value = self.scalar(value_node, f"{where}.{key}")
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[key] = "" if value is None else str(value)
        return env

    def docker(self, node: _Node) -> str | None:
        keys = self.mapping(node, "docker", {"base_image": "image qr dev --docker builds on"})
        if "base_image" not in keys:
            return None
        return self.string(
            keys["base_image"],
            "docker.base_image",
            re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$"),
            "use an image reference such as python:3.12-slim",
        )

    def terraform(self, node: _Node) -> S3Backend | None:
        keys = self.mapping(node, "terraform", {"backend": "where Terraform keeps its state"})
        if "backend" not in keys:
            return None
        backends = self.mapping(
            keys["backend"], "terraform.backend", {"s3": "S3 state", "local": "local state"}
        )
        if "s3" not in backends:
            return None
        s3 = self.mapping(backends["s3"], "terraform.backend.s3", _S3_KEYS)
        bucket = (
            self.string(s3["bucket"], "terraform.backend.s3.bucket") if "bucket" in s3 else None
        )
        if bucket is None:
            self.fail(
                backends["s3"], "terraform.backend.s3 needs a bucket", "add 'bucket: my-tf-state'"
            )
            return None
        region = (
            self.string(s3["region"], "terraform.backend.s3.region", REGION_RE)
            if "region" in s3
            else None
        )
        prefix = (
            self.string(s3["key_prefix"], "terraform.backend.s3.key_prefix")
            if "key_prefix" in s3
            else None
        )
        return S3Backend(bucket=bucket, region=region or "us-east-1", key_prefix=prefix or "qr")


_PROJECT_KEYS = {
    "name": "project name, prefixes every cloud resource",
    "runtime": "Lambda Python runtime",
    "architecture": "arm64 or x86_64",
    "region": "AWS region",
    "memory": "Lambda memory in MB",
    "throttle": "HTTP API throttling: {rate, burst}",
    "log_retention_days": "CloudWatch Logs retention",
    "stages": "deploy stages",
    "terraform": "Terraform settings",
    "docker": "qr dev --docker settings",
}
_STAGE_KEYS = {
    "domain": "custom domain",
    "zone": "Route53 hosted zone id",
    "env": "plain environment settings",
    "memory": "Lambda memory in MB for this stage",
    "throttle": "HTTP API throttling for this stage: {rate, burst}",
    "default_endpoint": "keep the execute-api URL next to the domain (default false)",
}
_S3_KEYS = {"bucket": "state bucket", "region": "bucket region", "key_prefix": "state key prefix"}
