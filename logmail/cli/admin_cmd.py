"""``logmail admin``: scripted administration, straight against the configured database.

No daemon needs to run: each command opens the stores named by the configuration and calls the same
services as the ``/admin`` API, acting as the operator (a platform admin; see
:mod:`logmail.services.operator`), so every rule and every audit entry is the same. The groups live
in ``admin_users.py``, ``admin_orgs.py``, ``admin_tokens.py`` and ``admin_ops.py``.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from logmail.cli import admin_ops, admin_orgs, admin_tokens, admin_users
from logmail.cli.admin_common import (
    JsonOption,
    PasswordStdinOption,
    admin_services,
    operator,
    print_json,
    read_password,
    show_fields,
    show_table,
    size,
    when,
)
from logmail.cli.common import ConfigOption, fail, load

app = typer.Typer(help="Administer an installation directly (no running daemon needed).", no_args_is_help=True)
db_app = typer.Typer(help="The SQL schema.", no_args_is_help=True)
app.add_typer(admin_users.users_app, name="users")
app.add_typer(admin_users.sessions_app, name="sessions")
app.add_typer(admin_orgs.orgs_app, name="orgs")
app.add_typer(admin_orgs.tiers_app, name="tiers")
app.add_typer(admin_tokens.app, name="tokens")
app.add_typer(admin_ops.outbound_app, name="outbound")
app.add_typer(admin_ops.accounts_app, name="accounts")
app.add_typer(db_app, name="db")

# `logmail admin health` exit statuses, as monitoring plugins use them.
HEALTHY, DEGRADED, DOWN = 0, 1, 2


def _services(config):
    from logmail.errors import LogmailError
    from logmail.services.container import build_services

    try:
        return build_services(load(config))
    except LogmailError as exc:
        fail(exc.message)


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Argument(help="The platform admin's email address (their login).")],
    config: ConfigOption = None,
    organization: Annotated[Optional[str], typer.Option(
        "--org", help="Organisation (id or name) to put them in (default: the built-in one).")] = None,
    role: Annotated[str, typer.Option(help="Their role in that organisation: owner, admin or member.")] = "owner",
    password_stdin: PasswordStdinOption = False,
    existing: Annotated[bool, typer.Option(
        "--existing", help="Give the flag to a user who exists already (no password asked).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a platform administrator, or make an existing user one (--existing).

    The password is asked twice at a hidden prompt, or read from stdin with --password-stdin; it is
    never an argument, which other users could read in the process list.

    Examples:
      logmail admin create-admin ops@example.com
      printf '%s\\n' "$PASSWORD" | logmail admin create-admin ops@example.com --password-stdin
      logmail admin create-admin dev@example.com --existing
    """
    with admin_services(config) as services:
        who = operator(services)
        admin = services.admin
        if existing:
            user = admin.users.grant_admin(who, admin.users.find(who, email))
        else:
            org = admin.organizations.find(who, organization) if organization else None
            password = read_password(password_stdin)
            user = admin.users.create_admin(who, email, password, organization_uuid=org, role=role)
    if as_json:
        print_json(user)
    else:
        typer.echo(f"{user['email']} ({user['id']}) is a platform admin, {user['role']} of "
                   f"{user['organisationName']}")


@app.command("stats")
def stats(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The platform in numbers: users, organisations, messages, storage, ingest rate, queue, sessions.

    Example: logmail admin stats --json
    """
    with admin_services(config) as services:
        data = services.admin.stats(operator(services))
    if as_json:
        print_json(data)
        return
    rate = data["ingestRate"]
    show_fields("logmail", [
        ("users", f"{data['users']['total']} ({data['users']['platformAdmins']} platform admin(s))"),
        ("organisations", f"{data['organizations']['total']} ({data['organizations']['active']} active, "
                          f"{data['organizations']['suspended']} suspended)"),
        ("messages", data["messages"]), ("storage", size(data["storageBytes"])),
        ("ingest rate", f"{rate['lastMinute']} in the last minute, {rate['lastHour']} in the last hour"),
        ("ingest queue", "unreachable" if data["queueDepth"] is None else f"{data['queueDepth']} waiting"),
        ("active sessions", data["activeSessions"]), ("at", when(data["generatedAt"]) + " UTC"),
    ])


@app.command("health")
def health(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check every store now, as GET /health/detailed does. Exits 0 when healthy, 1 when degraded and
    2 when down (the convention of monitoring plugins).

    Example: logmail admin health || page-someone
    """
    with admin_services(config) as services:
        report = services.health.detailed()
    if as_json:
        print_json(report)
    else:
        show_table(f"logmail is {report['status']}", ["service", "status", "latency", "detail"],
                   [[s["service"], s["status"], None if s["latencyMs"] is None else f"{s['latencyMs']:.0f} ms",
                     s["detail"]] for s in report["services"]])
    code = {"healthy": HEALTHY, "degraded": DEGRADED}.get(report["status"], DOWN)
    if code:
        raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Bring the SQL schema to this version's (daemons also do it when they start).

    Safe to run while daemons run and on a fresh database; on MySQL a lock keeps two upgrades apart.

    Example: logmail admin db upgrade --config /etc/logmail/logmail.toml
    """
    from logmail.errors import LogmailError
    from logmail.store.database import Database
    from logmail.store.migrate import current_revision, head_revision, upgrade

    settings = load(config)
    try:
        settings.data_path.mkdir(parents=True, mode=0o700, exist_ok=True)
        db = Database(settings.database_url, synchronous=settings.database.sqlite_synchronous)
        try:
            before = current_revision(db)
            applied = upgrade(db)
            after = current_revision(db)
        finally:
            db.dispose()
    except LogmailError as exc:
        fail(exc.message)
    except Exception as exc:  # an engine that cannot be reached or a URL it cannot parse
        fail(f"cannot upgrade the database: {type(exc).__name__}: {exc}")
    if as_json:
        print_json({"from": before, "to": after, "head": head_revision(), "upgraded": applied})
    elif applied:
        typer.echo(f"database schema upgraded from {before or 'nothing'} to {after}")
    else:
        typer.echo(f"database schema already at {after}")


@app.command("rotate-keys")
def rotate_keys(config: ConfigOption = None,
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Re-encrypt every stored mailbox password and webhook secret under a new key, daemons running.

    With the key file in the data directory a new key is made, every password re-encrypted under it,
    and the old keys retired. With accounts.encryption_keys, put the new key first in every daemon's
    configuration and restart them before running this; then remove the old key.

    Example: logmail admin rotate-keys --json
    """
    from rich.progress import Progress

    from logmail.errors import LogmailError
    from logmail.services.key_rotation import rotate_keys as rotate

    services = _services(config)
    try:
        with Progress(transient=True, disable=as_json) as bar:
            task = bar.add_task("re-encrypting", total=None)
            result = rotate(services.db, services.vault, progress=lambda n: bar.advance(task, n),
                            others=(services.webhooks.reencrypt_secrets,))
    except LogmailError as exc:
        fail(exc.message)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(result.__dict__))
    else:
        typer.echo(f"key {result.new_key_id}: {result.reencrypted} password(s) re-encrypted, "
                   f"{result.already_current} already current"
                   + (f", old key(s) {', '.join(result.retired_key_ids)} retired" if result.retired_key_ids else ""))
    if result.unreadable:
        fail(f"{len(result.unreadable)} account(s) or webhook(s) have a secret no key decrypts (their owners "
             f"must enter it again): {', '.join(result.unreadable[:20])}", 2)
