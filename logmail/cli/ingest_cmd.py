from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from logmail.cli.common import ConfigOption, load, stderr

# The exit codes Postfix's pipe(8) transport understands (sysexits.h).
EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67  # platform mode: no recipient has an address here (Postfix bounces "user unknown")
EX_UNAVAILABLE = 69  # platform mode: refused for good (suspended, over quota, too big): a bounce
EX_TEMPFAIL = 75
BATCH = 100


def ingest(
    files: Annotated[Optional[list[str]], typer.Argument(help=".eml or mbox files; '-' (or nothing) reads stdin.",
                                                          show_default=False)] = None,
    config: ConfigOption = None,
    mail_from: Annotated[str, typer.Option("--mail-from", "-f", help="Envelope sender (default: empty).")] = "",
    rcpt: Annotated[Optional[list[str]], typer.Option("--rcpt", "-r", help="Envelope recipient; repeatable "
                                                      "(default: the To, Cc and Bcc addresses of each message).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, eml or mbox. auto: files that start with a "
                                                       "'From ' line are mbox; stdin is one message, a leading "
                                                       "'From ' line (Postfix pipe flags=F) dropped.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    policy_checked: Annotated[bool, typer.Option(
        "--policy-checked", help="Platform mode: Postfix's check_policy_service already admitted these "
                                 "recipients; check them again, but do not count them against the "
                                 "per-minute rate a second time.")] = False,
) -> None:
    """Store messages from files or stdin through the same durable path as SMTP.

    Exits 0 once every message is stored, 75 on a temporary failure (retry later) and 65 when the
    input can never be stored: the codes Postfix's pipe(8) transport understands. In platform mode
    each recipient is checked like an SMTP RCPT: 67 when no recipient has an address here, 69 when
    they are refused for good (organisation suspended, quota reached, message too big), 75 when one
    is refused for now (rate limit). Recipients refused beside accepted ones are named on stderr.

    Examples:
      logmail ingest message.eml archive.mbox
      cat message.eml | logmail ingest -f sender@example.com -r someone@example.com -
    """
    from logmail.errors import LogmailError
    from logmail.logs import configure_logging
    from logmail.services.ingest_files import read_messages
    from logmail.services.accept import Envelope
    from logmail.services.container import build_services

    # A broken configuration is the operator's to fix, not the sender's problem: defer (75) so that
    # Postfix keeps the mail, rather than bounce it.
    settings = load(config, error_code=EX_TEMPFAIL)
    configure_logging("warning")
    sources = files or ["-"]
    try:
        batches = []
        for source in sources:
            data = _read(source)
            for raw in read_messages(data, "stdin" if fmt == "auto" and source == "-" else fmt):
                if len(raw) > settings.smtp.max_message_size:
                    _exit(EX_DATAERR, f"a message in {source} is larger than smtp.max_message_size "
                                      f"({settings.smtp.max_message_size} bytes)")
                batches.append(raw)
    except ValueError as exc:
        _exit(EX_DATAERR, str(exc))
    if not batches:
        _exit(EX_DATAERR, "no message found in the input")
    try:
        services = build_services(settings)
    except LogmailError as exc:
        _exit(EX_TEMPFAIL, exc.message)
    except Exception as exc:  # e.g. a URL the driver cannot parse: the operator's to fix, so defer
        _exit(EX_TEMPFAIL, f"cannot open logmail's storage: {type(exc).__name__}: {exc}")
    stored = 0
    refused_code = EX_OK
    try:
        items = [(raw, Envelope(mail_from=mail_from, rcpt_to=list(rcpt) if rcpt else _header_rcpts(raw),
                                source="cli")) for raw in batches]
        if services.platform:
            items, refused_code = _route(services.policy, items, count=not policy_checked)
        for i in range(0, len(items), BATCH):
            chunk = items[i:i + BATCH]
            services.acceptor.accept_many(chunk)
            stored += len(chunk)
    except LogmailError as exc:
        _exit(EX_TEMPFAIL, f"{exc.message} ({stored} of {len(batches)} message(s) stored)")
    except Exception as exc:  # anything unexpected is worth a retry, never a bounce
        _exit(EX_TEMPFAIL, f"could not store the messages: {type(exc).__name__} ({stored} stored)")
    finally:
        services.close()
    if refused_code != EX_OK:
        _exit(refused_code, f"{len(batches) - stored} of {len(batches)} message(s) not stored")
    if not quiet:
        stderr(f"logmail: stored {stored} message(s)")


def _route(policy, items, *, count: bool = True):
    """Platform mode: ask the policy for every recipient, as SMTP does at RCPT (and counting the
    same way); returns the messages to store, each with its routes, and the exit status the others
    call for (0 if none).

    A message with a temporarily refused recipient is not stored at all: one pipe(8) delivery has one
    exit status, and a 0 would lose that recipient's copy, where 75 makes Postfix try them all again.
    """
    keep, worst = [], EX_OK
    for raw, env in items:
        recipients = list(dict.fromkeys(env.rcpt_to))
        decisions = [(address, policy.check_recipient(address, size=len(raw), count=count)) for address in recipients]
        admitted = [(address, d.organization_id) for address, d in decisions if d.accepted]
        refused = [(address, d) for address, d in decisions if not d.accepted]
        for address, d in refused:
            stderr(f"logmail ingest: <{address}>: {d.smtp_reply()}")
        if any(d.temporary for _, d in refused):
            code = EX_TEMPFAIL
        elif admitted:
            env.rcpt_to = [address for address, _ in admitted]
            env.routes = {}
            for address, org in admitted:
                env.routes.setdefault(org, []).append(address)
            keep.append((raw, env))
            continue
        elif not refused:
            stderr("logmail ingest: a message has no recipient (give --rcpt)")
            code = EX_NOUSER
        elif all(d.reason == "unknown_recipient" for _, d in refused):
            code = EX_NOUSER
        else:
            code = EX_UNAVAILABLE
        worst = max(worst, code, key=_SEVERITY.index)
    return keep, worst


# Which status wins when messages of one run call for different ones: a deferral keeps mail.
_SEVERITY = [EX_OK, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL]


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{source}: is a directory") from None
    except PermissionError:
        raise ValueError(f"{source}: permission denied") from None


def _header_rcpts(raw: bytes) -> list[str]:
    from logmail.services.ingest_files import header_recipients

    return header_recipients(raw)


def _exit(code: int, message: str):
    typer.echo(f"logmail ingest: {message}", err=True)
    raise typer.Exit(code)
