"""The runtime's exceptions.

Two families, kept apart on purpose:

* ``HTTPError`` is raised *by handlers* to end a request early with a status code. The HTTP
  layer turns it into a JSON response ``{"error": detail}``.
* ``ProjectError`` is raised *at load time* when the user's project is wrong (a bad file name, an
  invalid ``config``, a bad cron...). It carries every ``Problem`` found in one scan, each naming
  the file (and line where there is one) and how to fix it. The CLI renders it; the test client
  raises it.

CLI-only errors (``QrError``) live in ``qr.cli.errors`` and never reach the runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus


class HTTPError(Exception):
    """End the current request with ``status``; ``detail`` becomes ``{"error": detail}``."""

    def __init__(
        self,
        status: int,
        detail: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status}")
        if detail is None:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    def __repr__(self) -> str:
        return f"HTTPError({self.status!r}, {self.detail!r})"


@dataclass(frozen=True)
class Problem:
    """One mistake in the user's project: where, what, how to fix."""

    file: str
    """Path relative to the project root (``api/bookmarks/[id].py``, ``qr.yaml``)."""
    line: int | None
    message: str
    hint: str = ""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def sort_key(self) -> tuple[str, int, str, str]:
        """File, then line (a problem without one first), then message."""
        return (self.file, self.line or 0, self.message, self.hint)

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}\n  fix: {self.hint}" if self.hint else text


class ProjectError(Exception):
    """The project cannot be loaded; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems), key=Problem.sort_key))
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} {noun} in the project:\n{body}")
