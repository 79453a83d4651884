"""WebSocket messages: each message a client sends arrives here."""


def handler(data, connection_id):
    return {"echo": data}
