"""Offline checks of rendered Terraform: provider schema and references (no AWS provider here).

``lint(directory)`` parses every ``*.tf`` with python-hcl2 and reports, as readable strings:

* unknown resource / data source types, arguments and blocks (recursively), checked against
  the AWS provider 6.69.1 schema in ``tests/fixtures/aws-provider-schema.json``;
* missing required arguments and blocks;
* references to undeclared resources, data sources, variables and locals, to unknown
  attributes, and to counted resources without an index (or uncounted ones with one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "aws-provider-schema.json"
META_ARGUMENTS = frozenset({"count", "for_each", "depends_on", "lifecycle", "provider"})
# Attributes of nested blocks that the provider computes; the schema file lists only top-level ones.
NESTED_COMPUTED = {
    ("aws_apigatewayv2_domain_name", "domain_name_configuration"): {
        "target_domain_name",
        "hosted_zone_id",
    },
}
_REFERENCE = re.compile(
    r"(?<![\w.\-])(?:(data)\.(\w+)\.([\w-]+)|(aws_\w+)\.([\w-]+)|(var|local)\.(\w+))"
    r"(\[[^\]]*\])?(?:\.(\w+))?(\[[^\]]*\])?(?:\.(\w+))?"
)


@cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


def parse(path: Path) -> dict[str, Any]:
    options = SerializationOptions(with_comments=False, strip_string_quotes=True)
    parsed: dict[str, Any] = hcl2.loads(
        path.read_text(encoding="utf-8"), serialization_options=options
    )
    return parsed


def parse_dir(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: parse(p) for p in sorted(directory.glob("*.tf"))}


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _body_problems(body: dict[str, Any], spec: dict[str, Any], where: str) -> Iterator[str]:
    for name, value in body.items():
        if name.startswith("__") or name in META_ARGUMENTS:
            continue
        if name == "dynamic":
            continue
        if name in spec["args"]:
            if _is_block(value):
                yield f"{where}: {name!r} is an argument, written as a block"
            continue
        if name in spec["blocks"]:
            if not _is_block(value):
                yield f"{where}: {name!r} is a block, written as an argument"
                continue
            for block in value:
                yield from _body_problems(block, spec["blocks"][name], f"{where}.{name}")
            continue
        yield f"{where}: unknown argument or block {name!r}"
    for name, arg in spec["args"].items():
        if arg["required"] and name not in body:
            yield f"{where}: missing required argument {name!r}"
    for name, block in spec["blocks"].items():
        if block.get("required") and name not in body:
            yield f"{where}: missing required block {name!r}"


def _declared(parsed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    declared: dict[str, Any] = {"resource": {}, "data": {}, "variable": set(), "local": set()}
    for tree in parsed.values():
        for kind in ("resource", "data"):
            for item in tree.get(kind, []):
                for type_name, labels in item.items():
                    for label, body in labels.items():
                        counted = "count" in body or "for_each" in body
                        declared[kind][(type_name, label)] = counted
        for item in tree.get("variable", []):
            declared["variable"].update(item)
        for item in tree.get("locals", []):
            declared["local"].update(k for k in item if not k.startswith("__"))
    return declared


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if not k.startswith("__"):
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _attribute_problems(
    kind: str, type_name: str, counted: bool, match: re.Match[str], text: str
) -> Iterator[str]:
    index, attribute, nested_index, nested = match.group(8, 9, 10, 11)
    where = f"{'data.' if kind == 'data' else ''}{type_name}"
    if attribute is None:
        return  # a whole-resource reference (jsonencode(...) or a for expression)
    if counted and index is None:
        yield f"{text}: {where} has count/for_each and needs an index before .{attribute}"
    if not counted and index is not None:
        yield f"{text}: {where} has no count/for_each and takes no index"
    spec = schema()["data_sources" if kind == "data" else "resources"].get(type_name)
    if spec is None:
        return  # reported as an unknown type
    known = set(spec["args"]) | set(spec["blocks"]) | set(spec.get("computed", ())) | {"id"}
    if attribute not in known:
        yield f"{text}: {where} has no attribute {attribute!r}"
        return
    if nested is not None:
        block = spec["blocks"].get(attribute)
        allowed = set(block["args"]) if block else set()
        allowed |= NESTED_COMPUTED.get((type_name, attribute), set())
        if nested not in allowed:
            yield f"{text}: {where}.{attribute}{nested_index or ''} has no attribute {nested!r}"


def _reference_problems(parsed: dict[str, dict[str, Any]]) -> Iterator[str]:
    declared = _declared(parsed)
    for file, tree in parsed.items():
        for text in _strings(tree):
            for match in _REFERENCE.finditer(text):
                if match.group(1):  # data.TYPE.LABEL
                    key = (match.group(2), match.group(3))
                    if key not in declared["data"]:
                        yield f"{file}: data.{key[0]}.{key[1]} is not declared"
                        continue
                    yield from _attribute_problems(
                        "data", key[0], declared["data"][key], match, file
                    )
                elif match.group(4):
                    key = (match.group(4), match.group(5))
                    if key not in declared["resource"]:
                        yield f"{file}: {key[0]}.{key[1]} is not declared"
                        continue
                    yield from _attribute_problems(
                        "resource", key[0], declared["resource"][key], match, file
                    )
                else:
                    kind, name = match.group(6), match.group(7)
                    if name not in declared["variable" if kind == "var" else "local"]:
                        yield f"{file}: {kind}.{name} is not declared"


def lint(directory: Path) -> list[str]:
    """Every schema and reference problem of the ``*.tf`` files in ``directory``."""
    parsed = parse_dir(directory)
    problems: list[str] = []
    types = schema()
    for file, tree in parsed.items():
        for kind, key in (("resource", "resources"), ("data", "data_sources")):
            for item in tree.get(kind, []):
                for type_name, labels in item.items():
                    for label, body in labels.items():
                        where = f"{file}: {type_name}.{label}"
                        if type_name not in types[key]:
                            problems.append(f"{where}: unknown {kind} type")
                            continue
                        problems.extend(_body_problems(body, types[key][type_name], where))
    problems.extend(_reference_problems(parsed))
    return problems
