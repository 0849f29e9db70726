"""The ``logmail`` command. Commands are thin: they load settings and call into the library."""

from __future__ import annotations

import typer

from logmail import __version__
from logmail.cli import admin_cmd, config_cmd, daemon_cmd, ingest_cmd, queue_cmd, send_cmd, tui_cmd

app = typer.Typer(
    name="logmail",
    help="Capture, store and inspect email. Start with: logmail daemon",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could show passwords
    add_completion=False,
)
app.command("daemon")(daemon_cmd.daemon)
app.command("ingest")(ingest_cmd.ingest)
app.command("send")(send_cmd.send)
app.command("tui")(tui_cmd.tui)
app.add_typer(config_cmd.app, name="config")
app.add_typer(queue_cmd.app, name="queue")
app.add_typer(admin_cmd.app, name="admin")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"logmail {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """logmail: a self-hosted email capture and inspection platform."""


def main() -> None:
    app()
