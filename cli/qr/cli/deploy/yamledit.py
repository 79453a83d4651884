"""Changing ``stages.<stage>.<key>`` in qr.yaml without losing the user's comments or layout.

A full YAML round trip (PyYAML) drops comments, and ruamel.yaml would be a dependency for two
keys, so this edits lines: PyYAML's composer gives each node's line and column, and only the lines
of the changed keys are touched. A key that exists gets its value replaced in place; a missing one
takes the place of a commented-out ``# key: ...`` line in the stage (as qr init writes them) or is
inserted as the stage's first key; a missing stage or ``stages:`` is added. Flow-style mappings
(``production: {domain: x}``) are left to the user with a clear message. The result is parsed
again before it is written, so a bad edit can never be saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import yaml

from qr.cli.errors import QrError
from qr.runtime.config import CONFIG_FILE, parse_config


def set_stage_values(text: str, stage: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = _set_one(text, stage, key, value)
    config = parse_config(text)
    for key, value in values.items():
        if getattr(config.stage(stage), key) != value:  # pragma: no cover - a bug in the edit
            raise QrError(f"could not set stages.{stage}.{key} in {CONFIG_FILE}", _BY_HAND)
    return text


def remove_stage_keys(text: str, stage: str, keys: Sequence[str]) -> str:
    for key in keys:
        lines = text.splitlines(keepends=True)
        mapping = _stage_mapping(text, stage, create=False)
        if mapping is None:
            return text
        for key_node, value_node in mapping.value:
            if key_node.value == key:
                end = value_node.end_mark.line + (1 if value_node.end_mark.column else 0)
                del lines[key_node.start_mark.line : max(end, key_node.start_mark.line + 1)]
                text = "".join(lines)
                break
    parse_config(text)
    return text


_BY_HAND = (
    f"Edit {CONFIG_FILE} by hand: under 'stages:', give the stage a block mapping "
    "(one 'key: value' per line)."
)


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise QrError(f"{CONFIG_FILE} is not valid YAML: {exc}", "Fix the file first.") from None


def _child(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return key_node, value_node
    return None


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")


def _stage_mapping(text: str, stage: str, *, create: bool) -> yaml.MappingNode | None:
    root = _compose(text)
    stages = _child(root, "stages") if root is not None else None
    if stages is None:
        return None
    found = _child(stages[1], stage)
    if found is None or not isinstance(found[1], yaml.MappingNode) or found[1].flow_style:
        return None
    return found[1]


def _set_one(text: str, stage: str, key: str, value: str) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    root = _compose(text)
    if root is None or _is_null(root):
        return "".join(lines) + f"stages:\n  {stage}:\n    {key}: {value}\n"
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise QrError(f"{CONFIG_FILE} is not a mapping of keys to values", _BY_HAND)
    stages = _child(root, "stages")
    if stages is None:
        return "".join(lines) + f"\nstages:\n  {stage}:\n    {key}: {value}\n"
    stages_key, stages_value = stages
    if _is_null(stages_value):
        at = stages_key.start_mark.line + 1
        indent = " " * (stages_key.start_mark.column + 2)
        lines[at:at] = [f"{indent}{stage}:\n", f"{indent}  {key}: {value}\n"]
        return "".join(lines)
    if not isinstance(stages_value, yaml.MappingNode) or stages_value.flow_style:
        raise QrError(f"'stages:' in {CONFIG_FILE} is not a block mapping", _BY_HAND)
    found = _child(stages_value, stage)
    if found is None:
        at = stages_key.start_mark.line + 1
        indent = " " * stages_value.value[0][0].start_mark.column
        lines[at:at] = [f"{indent}{stage}:\n", f"{indent}  {key}: {value}\n"]
        return "".join(lines)
    stage_key, stage_value = found
    inner = " " * (stage_key.start_mark.column + 2)
    if _is_null(stage_value) or (
        isinstance(stage_value, yaml.MappingNode)
        and stage_value.flow_style
        and not stage_value.value
    ):
        line = lines[stage_key.start_mark.line]
        if not _is_null(stage_value):  # an empty `{}`: drop it
            line = (
                line[: stage_value.start_mark.column].rstrip() + line[stage_value.end_mark.column :]
            )
            lines[stage_key.start_mark.line] = line.rstrip() + "\n"
        lines.insert(stage_key.start_mark.line + 1, f"{inner}{key}: {value}\n")
        return "".join(lines)
    if not isinstance(stage_value, yaml.MappingNode) or stage_value.flow_style:
        raise QrError(f"stages.{stage} in {CONFIG_FILE} is not a block mapping", _BY_HAND)
    existing = _child(stage_value, key)
    if existing is not None:
        node = existing[1]
        if node.start_mark.line != node.end_mark.line or not isinstance(node, yaml.ScalarNode):
            raise QrError(f"stages.{stage}.{key} in {CONFIG_FILE} spans several lines", _BY_HAND)
        row = lines[node.start_mark.line]
        lines[node.start_mark.line] = (
            row[: node.start_mark.column] + value + row[node.end_mark.column :]
        )
        return "".join(lines)
    inner = " " * stage_value.value[0][0].start_mark.column
    last = max(stage_value.end_mark.line, stage_key.start_mark.line + 1)
    commented = re.compile(rf"^{inner}#\s*{re.escape(key)}:\s*\S+(\s+#.*)?$")
    for index in range(stage_key.start_mark.line + 1, min(last + 1, len(lines))):
        match = commented.match(lines[index].rstrip("\n"))
        if match:
            entry = f"{inner}{key}: {value}"
            comment = (match.group(1) or "").lstrip()
            if comment:
                column = len(match.group(0)) - len(comment)
                entry += " " * max(1, column - len(entry)) + comment
            lines[index] = entry + "\n"
            return "".join(lines)
    lines.insert(stage_key.start_mark.line + 1, f"{inner}{key}: {value}\n")
    return "".join(lines)
