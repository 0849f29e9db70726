from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from logmail.cli.common import ConfigOption, fail, load

app = typer.Typer(help="Look at the work queue and its dead letters.", no_args_is_help=True)

QueueName = Annotated[str, typer.Option("--queue", help="Queue name.")]


def _services(config):
    from logmail.errors import LogmailError
    from logmail.services.container import build_services

    try:
        return build_services(load(config))
    except LogmailError as exc:
        fail(exc.message)


def _run(services, fn):
    """Run one queue operation; an unreachable queue is a one-line error, not a traceback."""
    from logmail.errors import LogmailError

    try:
        return fn()
    except LogmailError as exc:
        fail(exc.message)
    finally:
        services.close()


@app.command("status")
def status(config: ConfigOption = None, queue: QueueName = "ingest",
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """How many jobs wait and how many are dead-lettered.

    Example: logmail queue status --json
    """
    services = _services(config)
    data = _run(services, lambda: {"queue": queue, "ready": services.queue.depth(queue),
                                   "dead": len(services.queue.dead_letters(queue, limit=100_000))})
    typer.echo(json.dumps(data) if as_json else f"{queue}: {data['ready']} waiting, {data['dead']} dead-lettered")


@app.command("dead")
def dead(config: ConfigOption = None, queue: QueueName = "ingest", limit: int = 100,
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List dead-lettered jobs with the error that stopped them.

    Example: logmail queue dead --limit 10
    """
    services = _services(config)
    letters = _run(services, lambda: services.queue.dead_letters(queue, limit=limit))
    if as_json:
        typer.echo(json.dumps([{"id": d.id, "attempts": d.attempts, "error": d.error, "payload": d.payload,
                                "createdAt": d.created_at} for d in letters]))
        return
    if not letters:
        typer.echo(f"no dead-lettered jobs in {queue}")
    for d in letters:
        last = d.error.strip().splitlines()[-1] if d.error.strip() else ""
        typer.echo(f"{d.id}\tattempts={d.attempts}\t{last}")


@app.command("replay")
def replay(config: ConfigOption = None, queue: QueueName = "ingest",
           job_id: Annotated[Optional[list[str]], typer.Argument(help="Job ids (default: every dead letter).",
                                                                  show_default=False)] = None) -> None:
    """Put dead-lettered jobs back on the queue, with their attempts reset.

    Example: logmail queue replay 42 43
    """
    services = _services(config)
    n = _run(services, lambda: services.queue.replay(queue, job_id or None))
    typer.echo(f"replayed {n} job(s)")
