"""Plain shared code: the project root is on sys.path, so handlers `import lib.items`."""


def describe(item_id: str) -> dict[str, str]:
    return {"id": item_id, "name": f"Item {item_id}"}
