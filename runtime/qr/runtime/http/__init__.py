"""The HTTP runtime: the ASGI app built from a manifest (``create_app``) and its parts."""

from __future__ import annotations

from qr.runtime.http.app import DEFAULT_BODY_LIMIT, QrApp, create_app
from qr.runtime.http.injection import call_with
from qr.runtime.http.responses import Response

__all__ = ["DEFAULT_BODY_LIMIT", "QrApp", "Response", "call_with", "create_app"]
