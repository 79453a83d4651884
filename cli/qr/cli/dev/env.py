"""The dev server's environment: ``.env``, the shell and ``--env K=V``, in rising precedence.

``.env`` values fill in only what the shell does not set; ``--env`` wins over both. The keys that
came from ``.env`` are remembered, so when the file changes (hot reload) those keys are updated or
removed and nothing the shell or ``--env`` set is touched. ``project_values`` is what the project
itself defines (the keys of ``.env`` and ``--env``, each with the value that won), the environment
handed to code that does not share this process (``qr dev --docker`` containers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from qr.cli.errors import QrError

ENV_FILE = ".env"


def parse_assignments(values: Iterable[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``; a value without ``=`` is an error."""
    result: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise QrError(
                f"--env {value!r} is not KEY=VALUE",
                "pass each variable as --env NAME=value (repeat --env for more)",
            )
        result[key.strip()] = text
    return result


class DevEnvironment:
    """Applies ``.env`` and ``--env`` to ``environ`` (``os.environ`` by default)."""

    def __init__(
        self,
        root: Path,
        overrides: dict[str, str],
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.overrides = overrides
        self.environ: MutableMapping[str, str] = os.environ if environ is None else environ
        self.shell = set(self.environ) - set(overrides)
        self.from_file: dict[str, str] = {}
        self.file_keys: set[str] = set()
        """Every key in ``.env``, also those the shell or ``--env`` override."""

    @property
    def path(self) -> Path:
        return self.root / ENV_FILE

    def apply(self) -> list[str]:
        """(Re)apply ``.env`` and ``--env``; returns the keys that changed."""
        values = self._read()
        self.file_keys = set(values)
        changed: list[str] = []
        for key in list(self.from_file):
            if key not in values and key not in self.overrides:
                self.environ.pop(key, None)
                changed.append(key)
        self.from_file = {}
        for key, value in values.items():
            if key in self.shell or key in self.overrides:
                continue
            if self.environ.get(key) != value:
                changed.append(key)
            self.environ[key] = value
            self.from_file[key] = value
        for key, value in self.overrides.items():
            if self.environ.get(key) != value:
                changed.append(key)
            self.environ[key] = value
        return changed

    def project_values(self) -> dict[str, str]:
        """The keys of ``.env`` and ``--env`` with the values in effect (``--env`` > shell >
        ``.env``); the rest of the shell's environment is left out."""
        keys = sorted(self.file_keys | set(self.overrides))
        return {key: self.environ[key] for key in keys if key in self.environ}

    def _read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        return {k: v for k, v in dotenv_values(self.path).items() if v is not None}
