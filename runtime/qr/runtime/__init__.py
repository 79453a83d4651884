"""qr's runtime: what a deployed function (and `qr dev`) runs.

This package is copied into every Lambda bundle, so it stays small and never imports the CLI's
dependencies (typer, rich, jinja2, docker, boto3 at import time, `qr.cli`). The names users import
(`from qr.runtime import queues, socket, url, HTTPError, Response`) are resolved lazily so that
`import qr.runtime` costs almost nothing at cold start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "HTTPError": "qr.runtime.errors",
    "Response": "qr.runtime.http.responses",
    "url": "qr.runtime.urls",
    "ProjectError": "qr.runtime.errors",
    "Manifest": "qr.runtime.manifest",
    "scan": "qr.runtime.manifest",
    "queues": "qr.runtime.queues",
    "socket": "qr.runtime.sockets",
    "jobs": "qr.runtime.jobs",
    "JobState": "qr.runtime.ports",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from qr.runtime import jobs as jobs
    from qr.runtime.errors import HTTPError as HTTPError
    from qr.runtime.errors import ProjectError as ProjectError
    from qr.runtime.http.responses import Response as Response
    from qr.runtime.manifest import Manifest as Manifest
    from qr.runtime.manifest import scan as scan
    from qr.runtime.ports import JobState as JobState
    from qr.runtime.queues import queues as queues
    from qr.runtime.sockets import socket as socket
    from qr.runtime.urls import url as url


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qr.runtime' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value
