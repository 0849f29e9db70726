"""``logmail admin outbound`` and ``logmail admin accounts``: the mail logmail sends, and the mailboxes
it pulls from."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from logmail.cli.admin_common import (
    JsonOption,
    LimitOption,
    OffsetOption,
    admin_services,
    audit,
    listing,
    operator,
    page_caption,
    print_json,
    progress,
    show_fields,
    show_table,
    when,
)
from logmail.cli.common import ConfigOption, fail

outbound_app = typer.Typer(help="Outbound mail (notifications, alerts): the queue, retries.", no_args_is_help=True)
accounts_app = typer.Typer(help="Mailbox accounts (IMAP/POP3) of every organisation.", no_args_is_help=True)


# -- outbound --------------------------------------------------------------------------------------


@outbound_app.command("list")
def list_outbound(config: ConfigOption = None,
                  status: Annotated[Optional[str], typer.Option(
                      help="queued, sending, sent, failed or expired.")] = None,
                  kind: Annotated[Optional[str], typer.Option(help="notification or alert.")] = None,
                  limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """List outbound mail, newest first.

    Example: logmail admin outbound list --status failed
    """
    from logmail.services.outbound import KINDS
    from logmail.store.outbound import STATUSES

    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}", 2)
    if kind is not None and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}", 2)
    with admin_services(config) as services:
        items, total = services.outbound.list(status=status, kind=kind, limit=limit, offset=offset)
    data = listing("emails", items, total, limit, offset)
    if as_json:
        print_json(data)
        return
    show_table("outbound mail", ["id", "kind", "recipient", "subject", "status", "attempts", "created (UTC)",
                                 "last error"],
               [[e["id"], e["kind"], e["recipient"], e["subject"], e["status"], e["attemptCount"],
                 when(e["createdAt"]), e["lastError"]] for e in items], empty="no outbound mail",
               caption=page_caption(data["pagination"], len(items)))


@outbound_app.command("retry")
def retry(email: Annotated[str, typer.Argument(help="The outbound mail's id.")], config: ConfigOption = None,
          as_json: JsonOption = False) -> None:
    """Send a failed, expired or unconfirmed mail again, with fresh attempts (the daemon sends it).

    Example: logmail admin outbound retry 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    from logmail.services.audit import EMAIL_RETRIED

    with admin_services(config) as services:
        out = services.outbound.retry(email.lower())
        audit(services, operator(services), EMAIL_RETRIED, target_type="email", target_id=out["id"],
              details={"status": out["status"]})
    if as_json:
        print_json(out)
    else:
        typer.echo(f"{out['id']} to {out['recipient']}: {out['status']}")


@outbound_app.command("process")
def process(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Send what is due now, from this process (expire, reconcile, send), as the daemon's job does.

    Example: logmail admin outbound process --json
    """
    from logmail.daemon.outbound_job import install_sender
    from logmail.services.audit import EMAILS_PROCESSED

    with admin_services(config) as services:
        install_sender(services)
        with progress("sending", total=None, disable=as_json):
            report = services.outbound.process_due()
        audit(services, operator(services), EMAILS_PROCESSED, details=report)
        configured = services.outbound.enabled
    if as_json:
        print_json({"processed": report, "configured": configured})
        return
    if not configured:
        typer.echo("outbound mail is not configured (outbound.smtp_host); nothing is sent")
    typer.echo(", ".join(f"{k} {v}" for k, v in report.items()))


# -- mailbox accounts ------------------------------------------------------------------------------


@accounts_app.command("list")
def list_accounts(config: ConfigOption = None,
                  org: Annotated[Optional[str], typer.Option("--org", help="Only this organisation's "
                                                                           "(id or name).")] = None,
                  limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """List mailbox accounts with their last sync and error (never a password).

    Example: logmail admin accounts list --org Acme --json
    """
    with admin_services(config) as services:
        who = operator(services)
        org_uuid = services.admin.organizations.find(who, org) if org else None
        items, total = services.admin.accounts.list(who, organization_uuid=org_uuid, limit=limit, offset=offset)
    data = listing("accounts", items, total, limit, offset)
    if as_json:
        print_json(data)
        return
    show_table("mailbox accounts", ["id", "name", "email", "server", "last sync (UTC)", "last error"],
               [[a["id"], a["accountName"], a["emailAddress"], f"{a['protocol']}://{a['hostname']}:{a['port']}",
                 when(a["lastSyncAt"]), a["lastError"]] for a in items], empty="no mailbox accounts",
               caption=page_caption(data["pagination"], len(items)))


@accounts_app.command("sync")
def sync(accounts: Annotated[Optional[list[str]], typer.Argument(
             help="Account ids (default with --all: every enabled account).", show_default=False)] = None,
         config: ConfigOption = None,
         everyone: Annotated[bool, typer.Option("--all", help="Every enabled account.")] = False,
         later: Annotated[bool, typer.Option("--later", help="Only mark them due: a daemon's scheduler syncs "
                                                             "them within accounts.dispatch_interval.")] = False,
         as_json: JsonOption = False) -> None:
    """Sync mailbox accounts now, from this process (the mail is queued; a daemon's worker stores it).

    Exits 1 when a sync failed.

    Examples:
      logmail admin accounts sync 1b4e28ba-2fa1-11d2-883f-0016d3cca427
      logmail admin accounts sync --all --later
    """
    from logmail.imap.sync_service import AccountSyncService, request_sync

    if bool(accounts) == everyone:
        fail("name accounts, or give --all", 2)
    with admin_services(config) as services:
        ids = services.admin.accounts.ids(operator(services), None if everyone else list(accounts))
        results = []
        if later:
            results = [{"accountId": i, "status": "requested" if request_sync(services.db, i) else "skipped"}
                       for i in ids]
        else:
            syncer = AccountSyncService.from_services(services)
            with progress("syncing", total=len(ids), disable=as_json) as advance:
                for account_id in ids:
                    results.append(syncer.sync(account_id))
                    advance(1)
    failed = [r for r in results if r["status"] in ("error", "auth_failed")]
    if as_json:
        print_json({"results": results})
    elif len(results) == 1:
        show_fields("sync", list(results[0].items()))
    else:
        typer.echo(", ".join(f"{s} {sum(r['status'] == s for r in results)}"
                             for s in sorted({r["status"] for r in results})) or "no accounts")
    if failed:
        raise typer.Exit(1)
