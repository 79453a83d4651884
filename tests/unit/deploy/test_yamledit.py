"""Editing stages.<stage>.<key> in qr.yaml keeps comments and layout."""

from __future__ import annotations

import pytest

from qr.cli.deploy.yamledit import remove_stage_keys, set_stage_values
from qr.cli.errors import QrError
from qr.runtime.config import parse_config

SCAFFOLD = """\
# Project name.
name: app

# Deploy stages.
stages:
  production:
    # domain: api.example.com     # custom domain; WebSocket gets ws.api.example.com
    # zone: Z0123456789ABCDEFGHIJ # Route53 hosted zone id
    env:                          # plain settings
      LOG_LEVEL: info

# terraform:
#   backend: {}
"""


def test_commented_keys_are_filled_in_place() -> None:
    text = set_stage_values(SCAFFOLD, "production", {"domain": "api.shop.io", "zone": "Z9ABCDEF"})
    assert text == SCAFFOLD.replace(
        "    # domain: api.example.com     # custom",
        "    domain: api.shop.io           # custom",
    ).replace(
        "    # zone: Z0123456789ABCDEFGHIJ # Route53",
        "    zone: Z9ABCDEF                # Route53",
    )
    stage = parse_config(text).stage("production")
    assert (stage.domain, stage.zone, dict(stage.env)) == (
        "api.shop.io",
        "Z9ABCDEF",
        {"LOG_LEVEL": "info"},
    )


def test_existing_values_are_replaced_and_removed() -> None:
    text = set_stage_values(SCAFFOLD, "production", {"domain": "a.shop.io"})
    text = set_stage_values(text, "production", {"domain": "b.shop.io"})
    assert "    domain: b.shop.io             # custom domain" in text
    assert text.count("domain:") == 1
    removed = remove_stage_keys(text, "production", ["domain", "zone"])
    assert "domain" not in removed.replace("# domain", "")
    assert "# Project name." in removed and "# terraform:" in removed
    assert parse_config(removed).stage("production").domain is None
    assert remove_stage_keys(removed, "staging", ["domain"]) == removed


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("name: x\n", "name: x\n\nstages:\n  dev:\n    domain: a.io\n"),
        ("", "stages:\n  dev:\n    domain: a.io\n"),
        ("name: x\nstages:\n", "name: x\nstages:\n  dev:\n    domain: a.io\n"),
        (
            "name: x\nstages:\n    production:\n        memory: 256\n",
            "name: x\nstages:\n    dev:\n      domain: a.io\n    production:\n        memory: 256\n",
        ),
        ("stages:\n  dev:\n  other: {}\n", "stages:\n  dev:\n    domain: a.io\n  other: {}\n"),
        ("stages:\n  dev: {}  # mine\n", "stages:\n  dev:  # mine\n    domain: a.io\n"),
        (
            "stages:\n  dev:\n    memory: 256\n",
            "stages:\n  dev:\n    domain: a.io\n    memory: 256\n",
        ),
    ],
)
def test_missing_stages_and_keys_are_added(before: str, after: str) -> None:
    assert set_stage_values(before, "dev", {"domain": "a.io"}) == after


@pytest.mark.parametrize(
    "text",
    ["stages: {dev: {memory: 256}}\n", "stages:\n  dev: {memory: 256}\n", "- a\n- b\n"],
)
def test_flow_style_is_left_to_the_user(text: str) -> None:
    with pytest.raises(QrError, match="by hand"):
        set_stage_values(text, "dev", {"domain": "a.io"})
