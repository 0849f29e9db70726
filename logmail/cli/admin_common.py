"""What the ``logmail admin`` commands share: services opened against the configured database, the
operator they act as, output (Rich tables for people, ``--json`` for scripts), confirmations,
passwords from a prompt or stdin, and errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from logmail.cli.common import fail, load

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many to show.")]
OffsetOption = Annotated[int, typer.Option("--offset", min=0, help="How many to skip.")]
PasswordStdinOption = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of stdin instead of prompting.")]


@contextmanager
def admin_services(config: str | None) -> Iterator[Any]:
    """The services of the configured installation (schema upgraded, as a daemon start would); a
    LogmailError anywhere inside becomes its message on stderr and exit status 1."""
    from logmail.errors import LogmailError
    from logmail.services.container import build_services

    try:
        services = build_services(load(config))
    except LogmailError as exc:
        fail(exc.message)
    try:
        yield services
    except LogmailError as exc:
        fail(exc.message)
    finally:
        services.close()


def operator(services):
    """The principal ``logmail admin`` acts as: a platform admin, in the built-in organisation."""
    from logmail.services.operator import operator as make

    return make(services.boot.organization_id, services.boot.organization_uuid)


def audit(services, who, action: str, **fields: Any) -> None:
    """An audit entry for a change the services do not record themselves (as the API's handler does)."""
    with services.db.write() as session:
        services.auth.audit.add(session, who, action, **fields)


# -- output ----------------------------------------------------------------------------------------


def console():
    from rich.console import Console

    # Piped or captured output is not a terminal; give tables room rather than 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               empty: str = "nothing to show", caption: str | None = None) -> None:
    from rich.table import Table

    if not rows:
        typer.echo(empty)
        return
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    console().print(table)


def show_fields(title: str, fields: Sequence[tuple[str, Any]]) -> None:
    """One object as a two-column table of field and value."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields:
        table.add_row(name, cell(value))
    console().print(table)


def page_caption(pagination: dict[str, int], shown: int) -> str:
    first = pagination["offset"] + 1 if shown else 0
    return f"{first}-{pagination['offset'] + shown} of {pagination['total']}"


def listing(key: str, items: list, total: int, limit: int, offset: int) -> dict[str, Any]:
    """The JSON of a listing: the API's own shape, so scripts read both alike."""
    return {key: items, "pagination": {"total": total, "limit": limit, "offset": offset}}


# -- asking ----------------------------------------------------------------------------------------


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless ``--yes``; "no" (or no answer) aborts with status 1."""
    if not yes:
        typer.confirm(question, abort=True, err=True)


def read_password(from_stdin: bool, *, prompt: str = "Password") -> str:
    """From the first line of stdin, or a hidden prompt asked twice; never from an argument."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("--password-stdin: stdin holds no password")
        return password
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)


def progress(label: str, *, total: int | None, disable: bool) -> Any:
    """A progress bar on stderr (so ``--json`` output stays clean); ``advance(n)`` moves it."""
    from rich.console import Console
    from rich.progress import Progress

    return _Bar(Progress(console=Console(stderr=True), transient=True, disable=disable), label, total)


class _Bar:
    def __init__(self, bar, label: str, total: int | None) -> None:
        self.bar = bar
        self.label = label
        self.total = total

    def __enter__(self) -> Callable[[int], None]:
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
