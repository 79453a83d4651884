"""/items/{id} - a path parameter, injected by its name."""

from lib.items import describe


def get(id):
    return describe(id)


def delete(id):
    return None  # 204 No Content
