"""Output: rich on a terminal, plain text when piped (no colour codes, no boxes).

Commands receive an ``Output`` rather than printing, so tests can capture it and ``--json``
output stays machine-readable.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


class Output:
    def __init__(self, file: IO[str] | None = None, *, rich: bool | None = None) -> None:
        stream = file or sys.stdout
        if rich is None:
            rich = (
                stream.isatty()
                and not os.environ.get("NO_COLOR")
                and os.environ.get("TERM") != "dumb"
            )
        self.rich = rich
        self.console = Console(
            file=stream,
            force_terminal=rich,
            no_color=not rich,
            highlight=False,
            soft_wrap=not rich,
            width=None if rich else 200,
        )
        self.stream = stream

    def print(self, *objects: Any, style: str | None = None) -> None:
        self.console.print(*objects, style=style if self.rich else None)

    def line(self, text: str = "") -> None:
        """A plain line of text (markup is not interpreted)."""
        self.console.print(Text(text))

    def json(self, data: Any) -> None:
        self.stream.write(json.dumps(data, indent=2, default=str) + "\n")
        self.stream.flush()

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        if not self.rich:
            self.line(f"{title}:")
            if not rows:
                self.line("  (none)")
                return
            widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
            self.line(
                "  "
                + "  ".join(
                    c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)
                ).rstrip()
            )
            for row in rows:
                self.line(
                    "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                )
            return
        table = Table(title=title, title_justify="left", title_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(Text(v) for v in row))
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        self.console.print(table)

    def error(self, title: str, body: str) -> None:
        if self.rich:
            self.console.print(
                Panel(Text(body), title=f"[bold red]{title}", border_style="red", expand=False)
            )
        else:
            self.line(f"error: {title}")
            for row in body.splitlines():
                self.line(f"  {row}")

    def success(self, text: str) -> None:
        self.print(f"[green]✓[/green] {text}" if self.rich else f"ok: {text}")
