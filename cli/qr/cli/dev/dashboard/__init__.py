"""The ``qr dev`` dashboard: pages under ``/_qr/`` that show and drive the local backend.

``feed`` holds the live events (console lines, requests); ``pages`` renders the pages
(Jinja2 templates in ``templates/``, two small static files in ``static/``, no build step, no
CDN) and runs their actions. ``DevApp`` (``qr.cli.dev.app``) sends every ``/_qr/`` request
through ``ControlGuard`` first.
"""
