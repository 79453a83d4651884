"""The ``qr`` command: registers each command module and owns error handling.

``main()`` is the only place that turns exceptions into messages and exit codes (see
``qr.cli.errors`` for the tree); commands just raise.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import click
import typer

from qr.cli.commands import (
    build,
    deploy,
    destroy,
    dev,
    domain,
    env,
    init,
    jobs,
    logs,
    queues,
    rollback,
    routes,
    status,
)
from qr.cli.console import Output
from qr.cli.errors import QrError
from qr.runtime import __version__
from qr.runtime.errors import ProjectError

app = typer.Typer(
    name="qr",
    help="Build a backend from a folder of handler files; run it locally, deploy it to AWS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init.command)
app.command("routes")(routes.command)
app.add_typer(queues.app, name="queues")
app.command("jobs")(jobs.command)
app.add_typer(dev.app, name="dev")
app.command("build")(build.command)
app.command("deploy")(deploy.command)
app.command("rollback")(rollback.command)
app.command("destroy")(destroy.command)
app.command("logs")(logs.command)
app.command("status")(status.command)
app.add_typer(env.app, name="env")
app.add_typer(domain.app, name="domain")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"qr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``qr`` console script and ``python -m qr.cli``."""
    args = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in args
    err = Output(sys.stderr)
    try:
        app(args=args, prog_name="qr")
    except QrError as exc:
        _debug_traceback(err)
        err.error(exc.message, exc.hint or "")
        sys.exit(exc.exit_code)
    except ProjectError as exc:
        _debug_traceback(err)
        body = "\n".join(str(p) for p in exc.problems)
        count = len(exc.problems)
        err.error(f"{count} problem{'s' if count != 1 else ''} in the project", body)
        sys.exit(1)
    except (KeyboardInterrupt, click.exceptions.Abort):
        err.line("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            traceback.print_exc()
        err.error(
            f"internal error: {type(exc).__name__}: {exc}",
            "This is a bug in qr. Run the command again with --debug for the traceback and report it.",
        )
        sys.exit(2)


def _debug_traceback(err: Output) -> None:
    if _state["debug"]:
        traceback.print_exc(file=err.stream)
