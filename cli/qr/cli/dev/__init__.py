"""``qr dev``: the local development server.

One process, one port: uvicorn serves ``DevApp`` (``app``), which sends HTTP to the project's app
(``qr.runtime.http.create_app``), WebSocket to the local socket endpoint
(``qr.runtime.local.websocket``) and ``/_qr/...`` to the control endpoint (``control``). Beside it
run the queue worker (``qr.runtime.local``), the schedule runner (``scheduler``) and the file
watcher (``reload``). ``server.run`` wires them together; ``log`` prints one line per request,
message, job and schedule run.
"""
