"""Stage settings and secrets from SSM Parameter Store, read once per cold start.

``qr env set NAME VALUE`` stores ``QR_SSM_PATH + NAME`` (a SecureString for secrets). At cold
start the entry point reads every parameter under the path (decrypted, all pages) and puts each
into ``os.environ`` under its last path segment, so handlers read settings with ``os.environ`` as
they do under ``qr dev`` with ``.env``. A parameter overrides a plain environment variable of the
same name (it was set later, on purpose). Failing to read them is logged and the function keeps
serving: a missing secret then fails only the handlers that use it, with a clear KeyError.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from qr.runtime.aws._clients import Clients

log = logging.getLogger("qr.env")


def load_parameters(
    path: str, clients: Clients, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy the parameters under ``path`` into ``environ``; returns the names set (sorted)."""
    target = os.environ if environ is None else environ
    prefix = path if path.endswith("/") else path + "/"
    client = clients.get("ssm")
    request: dict[str, Any] = {"Path": prefix, "Recursive": True, "WithDecryption": True}
    names: list[str] = []
    while True:
        page = client.get_parameters_by_path(**request)
        for parameter in page.get("Parameters", []):
            name = str(parameter["Name"]).rsplit("/", 1)[-1]
            if name:
                target[name] = str(parameter.get("Value", ""))
                names.append(name)
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return sorted(names)
