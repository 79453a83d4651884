"""CORS from a route's ``config["cors"]`` (default: on, any origin).

``preflight`` answers an ``OPTIONS`` request carrying ``Access-Control-Request-Method``;
``headers_for`` gives the headers added to every other response when the request has an
``Origin``. With ``origins: ["*"]`` and no credentials the answer is the literal ``*``; otherwise
the request's origin is echoed when it is allowed (with ``Vary: Origin``) and nothing is added when
it is not, so the browser blocks the response.
"""

from __future__ import annotations

from collections.abc import Sequence

from qr.runtime.manifest import Cors


def _allowed_origin(cors: Cors, origin: str) -> str | None:
    if "*" in cors.origins:
        return origin if cors.credentials else "*"
    return origin if origin in cors.origins else None


def headers_for(cors: Cors, origin: str | None) -> dict[str, str]:
    if not cors.enabled or not origin:
        return {}
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return {}
    headers = {"access-control-allow-origin": allowed}
    if allowed != "*":
        headers["vary"] = "Origin"
    if cors.credentials:
        headers["access-control-allow-credentials"] = "true"
    if cors.expose_headers:
        headers["access-control-expose-headers"] = ", ".join(cors.expose_headers)
    return headers


def preflight(
    cors: Cors, origin: str | None, methods: Sequence[str], request_headers: str | None
) -> dict[str, str]:
    """Headers of the 204 answer to a preflight (empty when the origin is not allowed)."""
    headers = headers_for(cors, origin)
    if not headers:
        return {}
    headers["access-control-allow-methods"] = ", ".join(methods)
    if "*" in cors.headers:
        if request_headers:
            headers["access-control-allow-headers"] = request_headers
    else:
        headers["access-control-allow-headers"] = ", ".join(cors.headers)
    headers["access-control-max-age"] = str(cors.max_age)
    vary = "Origin, Access-Control-Request-Headers" if "vary" in headers else ""
    if vary:
        headers["vary"] = vary
    return headers
