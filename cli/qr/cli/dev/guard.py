"""Who may drive the dev server's control endpoints: the CLI of the user who started it.

A browser page from any site can send requests to ``localhost`` (a form post needs no CORS
preflight), and a site whose DNS name is rebound to 127.0.0.1 even reads the answers. So
``ControlGuard`` checks, before any control endpoint runs:

1. ``Host`` names this server: ``localhost``, ``127.0.0.1`` or ``[::1]`` with its port, or the
   host it was bound to (``qr dev --host``). A rebound DNS name fails here.
2. ``Origin``, when a browser sends one, is one of those same origins (``http://localhost:8000``):
   a page of another site fails here.
3. ``X-Qr-Token`` carries the per-run token written in the private server file
   (``.qr/dev/server.json``, mode 0600), which only the user who runs ``qr dev`` can read. A
   page of this server may skip it (``token=False``) where the endpoint serves the browser.

Any failure is a 403 whose message says which check failed (never the token). Endpoints added
later (jobs, a dashboard) get the same checks by going through ``DevApp.control``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Scope

TOKEN_HEADER = "x-qr-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_ANY_INTERFACE = ("0.0.0.0", "::", "")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class ControlGuard:
    token: str = field(default_factory=new_token, repr=False)
    bound_host: str = "127.0.0.1"
    port: int | None = None
    """Set once the server listens (``--port 0`` picks it then)."""

    def allowed_hosts(self) -> frozenset[str]:
        """``Host`` header values (``name:port``) that name this server."""
        names: list[str] = list(LOOPBACK_NAMES)
        if self.bound_host not in _ANY_INTERFACE:
            names.append(f"[{self.bound_host}]" if ":" in self.bound_host else self.bound_host)
        return frozenset(_with_port(names, self.port))

    def refusal(self, scope: Scope, *, token: bool = True) -> str | None:
        """Why this request may not use a control endpoint, or ``None`` when it may."""
        headers = Headers(scope=scope)
        allowed = self.allowed_hosts()
        host = headers.get("host", "").lower()
        if host not in allowed:
            return f"Host {host!r} is not this dev server (DNS rebinding?)"
        origin = headers.get("origin")
        if origin is not None and origin.lower().removeprefix("http://") not in allowed:
            return f"Origin {origin!r} may not drive the dev server"
        if token and not hmac.compare_digest(
            headers.get(TOKEN_HEADER, "").encode(), self.token.encode()
        ):
            return f"missing or wrong {TOKEN_HEADER} header (the qr CLI sends it)"
        return None

    def forbidden(self, reason: str) -> JSONResponse:
        return JSONResponse(
            {
                "error": f"forbidden: {reason}",
                "hint": "the control endpoint only answers the qr CLI on this machine "
                "(qr dev schedule, qr jobs, ...)",
            },
            403,
        )


def _with_port(names: Iterable[str], port: int | None) -> Iterable[str]:
    for name in names:
        if port is None:
            continue
        yield f"{name}:{port}"
        if port == 80:
            yield name
