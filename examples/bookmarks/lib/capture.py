"""A stand-in for a real screenshot service: an SVG card for the page, as a data URL.

A real app would call a headless browser here; this keeps the example runnable offline while
doing the same kind of slow-ish, failure-prone work a queue is for.
"""

from __future__ import annotations

import base64
import html
from urllib.parse import urlsplit


def capture(url: str, title: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"cannot capture {url!r}: not an absolute URL")
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180">'
        '<rect width="100%" height="100%" fill="#f4f4f4"/>'
        f'<text x="16" y="80" font-size="20">{html.escape(title)}</text>'
        f'<text x="16" y="120" font-size="14" fill="#666">{html.escape(host)}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
