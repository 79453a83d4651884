"""The deployed stage the operating commands talk to: names, region, last known outputs.

Names follow the shared contract (function ``<name>-<stage>``, log group
``/aws/lambda/<name>-<stage>``, SSM path ``/qr/<name>/<stage>/``); when the last deploy recorded
Terraform outputs, those win, so a renamed resource is still found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qr.cli.deploy.aws import Aws
from qr.cli.deploy.versions import ALIAS, DeploymentLog
from qr.cli.project import find_root
from qr.runtime.config import ProjectConfig, load_config


@dataclass
class Target:
    root: Path
    config: ProjectConfig
    stage: str
    aws: Aws
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.config.name}-{self.stage}"

    @property
    def function(self) -> str:
        return str(self.outputs.get("function_name") or self.prefix)

    @property
    def alias(self) -> str:
        return str(self.outputs.get("alias_name") or ALIAS)

    @property
    def log_group(self) -> str:
        return str(self.outputs.get("log_group") or f"/aws/lambda/{self.prefix}")

    @property
    def ssm_path(self) -> str:
        return f"/qr/{self.config.name}/{self.stage}/"

    @property
    def log(self) -> DeploymentLog:
        return DeploymentLog(self.root)

    def queue_name(self, queue: str) -> str:
        """``<name>-<stage>-<queue>`` with ``.fifo`` kept last."""
        base = queue.removesuffix(".fifo")
        return f"{self.prefix}-{base}" + (".fifo" if queue.endswith(".fifo") else "")

    def dlq_name(self, queue: str) -> str:
        base = queue.removesuffix(".fifo")
        return f"{self.prefix}-{base}-dlq" + (".fifo" if queue.endswith(".fifo") else "")


def load_target(project: Path, stage: str | None, aws: Aws | None = None) -> Target:
    root = find_root(project)
    config = load_config(root)
    name = config.stage(stage).name
    last = DeploymentLog(root).last(name, "deploy")
    return Target(
        root=root,
        config=config,
        stage=name,
        aws=aws or Aws(config.region),
        outputs=dict(last.outputs) if last else {},
    )
