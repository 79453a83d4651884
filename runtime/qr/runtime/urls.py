"""Absolute URLs of routes: ``url("/bookmarks/[id]", id=5, page=2)`` and ``url.self()``.

Routes are written as files spell them (``/bookmarks/[id]``, ``/files/[...path]``). Each
``[name]`` takes the keyword of that name (percent-encoded as one segment, so a ``/`` in a value
stays inside it); a ``[...name]`` takes a list of segments (or a string, whose slashes are kept).
Keywords no segment uses become the query string (lists repeat the key, ``None`` is left out).

The base is the platform's ``base_url`` (the deployed API URL or custom domain, or
``http://localhost:PORT`` under ``qr dev``), or ``DEFAULT_BASE_URL`` when no platform is set
(tests; ``set_default_base_url`` changes it).

``url.self()``, called at the top level of a route file, returns a builder for that file's route,
found from the ``__qr_file__`` the loader sets in every handler module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from urllib.parse import quote, urlencode

from qr.runtime import ports
from qr.runtime.manifest import API_DIR, PARAM_RE

DEFAULT_BASE_URL = "http://localhost:8000"
_default_base = DEFAULT_BASE_URL


def set_default_base_url(base: str | None) -> str:
    """The base used when no platform is set (``None`` resets); returns the previous one."""
    global _default_base
    previous, _default_base = _default_base, base or DEFAULT_BASE_URL
    return previous


def base_url() -> str:
    try:
        return ports.get_platform("url()").base_url
    except ports.NoPlatformError:
        return _default_base


def build(route: str, params: dict[str, object]) -> str:
    """The absolute URL of ``route`` with ``params`` (see the module docstring)."""
    if not route.startswith("/"):
        raise ValueError(
            f"url() takes a route starting with '/', like '/bookmarks/[id]'; got {route!r}"
        )
    unused = dict(params)
    segments: list[str] = []
    for segment in route.strip("/").split("/"):
        if not segment:
            continue
        match = PARAM_RE.match(segment)
        if match is None:
            segments.append(quote(segment, safe="!$&'()*+,;=:@-._~"))
            continue
        name = match.group(2)
        if name not in unused or unused[name] is None:
            raise ValueError(
                f"url({route!r}) needs a value for [{'...' if match.group(1) else ''}{name}]: "
                f"pass {name}=..."
            )
        value = unused.pop(name)
        if match.group(1):
            parts = value.split("/") if isinstance(value, str) else _strings(value, name, route)
            segments.extend(quote(part, safe="") for part in parts)
        else:
            segments.append(quote(str(value), safe=""))
    path = "/" + "/".join(segments)
    query = {k: _query_value(v) for k, v in unused.items() if v is not None}
    text = f"{base_url().rstrip('/')}{path}"
    return f"{text}?{urlencode(query, doseq=True)}" if query else text


def _strings(value: object, name: str, route: str) -> list[str]:
    if isinstance(value, Iterable) and not isinstance(value, bytes):
        return [str(v) for v in value]
    raise ValueError(f"url({route!r}): [...{name}] takes a list of segments, got {value!r}")


def _query_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return [_query_value(v) for v in value]
    return str(value)


def route_of_file(relative: str) -> str:
    """``api/bookmarks/[id].py`` -> ``/bookmarks/[id]``; ``api/index.py`` -> ``/``."""
    parts = relative.removesuffix(".py").split("/")
    if not parts or parts[0] != API_DIR:
        raise ValueError(f"{relative} is not a route file under {API_DIR}/")
    parts = parts[1:]
    if parts and parts[-1] == "index":
        parts = parts[:-1]
    return "/" + "/".join(parts)


class RouteURL:
    """Builds URLs of one route: ``url_for_bookmark(id=5)``."""

    def __init__(self, route: str) -> None:
        self.route = route

    def __call__(self, **params: object) -> str:
        return build(self.route, params)

    def __repr__(self) -> str:
        return f"RouteURL({self.route!r})"


class URLBuilder:
    def __call__(self, route: str, /, **params: object) -> str:
        return build(route, params)

    def self(self) -> RouteURL:
        """A builder for the route of the file this is called from (at its top level)."""
        caller = sys._getframe(1).f_globals
        relative = caller.get("__qr_file__")
        if not isinstance(relative, str) or not relative.startswith(f"{API_DIR}/"):
            where = caller.get("__file__") or caller.get("__name__")
            raise RuntimeError(
                f"url.self() was called from {where}, which is not a route file; call it at the "
                f"top level of a file under {API_DIR}/, or use url('/route/[param]', ...)"
            )
        return RouteURL(route_of_file(relative))


url = URLBuilder()
