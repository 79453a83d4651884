"""``_middleware.py`` hooks of one route, resolved once when the app is built.

The manifest has already walked the folder chain (the route module's own definition wins, then the
nearest ``_middleware.py`` up to ``api/``; ``hook = None`` turns an inherited hook off) and records
which file defines each hook. Here those names become functions, and the hooks are run:

* ``authenticate(bearer_token, username, password, cookies, request, headers, request_id)`` ->
  a user dict with ``"id"``, a bare id (``"u1"`` -> ``{"id": "u1"}``), or ``None`` for anonymous;
  it may raise ``HTTPError(401/403)``. Credentials come from ``Authorization: Bearer ...`` and
  ``Authorization: Basic ...`` (malformed ones count as absent);
* ``on_request(request, user, request_id)`` before the handler; returning a response (or any
  handler-style result other than ``None``) answers the request without calling the handler;
* ``on_response(request, response, user, request_id)`` after the handler, including for
  ``HTTPError`` responses; returning a response replaces it;
* ``on_error(error, request, user, request_id)`` for unhandled exceptions; returning a response
  replaces the 500.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qr.runtime import _loader
from qr.runtime.manifest import Route

Hook = Callable[..., Any]


@dataclass(frozen=True)
class Hooks:
    authenticate: Hook | None = None
    on_request: Hook | None = None
    on_response: Hook | None = None
    on_error: Hook | None = None


def resolve(route: Route, root: Path) -> Hooks:
    """The hooks ``route`` inherits, from the modules of the project at ``root``."""
    found: dict[str, Hook] = {}
    for hook, file in route.middleware.items():
        if file is None:
            continue
        module = sys.modules.get(_loader.module_name(root, file))
        function = getattr(module, hook, None) if module is not None else None
        if callable(function):
            found[hook] = function
    return Hooks(**found)


def credentials(authorization: str | None) -> tuple[str | None, str | None, str | None]:
    """``(bearer_token, username, password)`` from an ``Authorization`` header."""
    if not authorization:
        return None, None, None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value, None, None
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None, None
        username, sep, password = decoded.partition(":")
        if sep:
            return None, username, password
    return None, None, None


class BadUser(TypeError):
    pass


def normalize_user(value: object, where: str) -> Mapping[str, Any] | None:
    """``authenticate``'s result as the user mapping (or ``None``)."""
    if value is None:
        return None
    if type(value) is dict and value.get("id") is not None:  # the common answer, checked cheaply
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"id": str(value)}
    if isinstance(value, Mapping):
        if value.get("id") is None:
            raise BadUser(f"{where}: authenticate() returned a dict without an 'id': {value!r}")
        return value
    raise BadUser(
        f"{where}: authenticate() must return a user dict with an 'id', a user id string or None, "
        f"got {type(value).__name__}"
    )
