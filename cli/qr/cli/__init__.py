"""qr's command-line interface: thin typer commands over library functions.

The one place that turns errors into output and exit codes is ``qr.cli.main.main``.
"""
