"""CLI-facing errors.

Exception tree (everything a command raises on purpose):

* ``QrError(message, hint)`` - a failure the user can act on: what went wrong, where, and how to
  fix it (``hint``). ``qr.cli.main.main`` renders it as one panel and exits 1.
* ``qr.runtime.errors.ProjectError`` - the project has mistakes; rendered as a list of
  ``file:line: message`` with a fix for each, exit 1.

Anything else is a bug in qr: one line asking for ``--debug`` (which shows the traceback), exit 2.
"""

from __future__ import annotations


class QrError(Exception):
    def __init__(self, message: str, hint: str = "", *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message
