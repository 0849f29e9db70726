"""The daemon's part in mailbox accounts: it hands the protocol code to the services that need it."""

from __future__ import annotations

from typing import Any


def check_login(details: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``POST /api/accounts/{id}/test``: log in and out, import nothing; the outcome, never an exception."""
    from logmail.imap.errors import MailboxAuthError, MailboxError
    from logmail.imap.probe import check_login as probe

    try:
        found = probe(timeout=timeout, **details)
    except MailboxAuthError as exc:
        return {"ok": False, "error": "authentication_failed", "message": str(exc)}
    except MailboxError as exc:
        return {"ok": False, "error": "unreachable", "message": str(exc)}
    return {"ok": True, "message": "logged in", **found}


def report_sync_failures(services):
    """The sync's failure hook, called after every recorded failure: an ``account.sync_failed``
    webhook at the first failure of a streak (or a refused password), and the owner's notification,
    which decides for itself when a streak is worth telling (once per streak)."""
    def report(account, error: str, auth_failed: bool, failures: int) -> None:
        if auth_failed or failures == 1:
            services.webhooks.emit(account.organization_id, "account.sync_failed", {
                "accountId": account.uuid, "emailAddress": account.email_address, "protocol": account.protocol,
                "error": error, "consecutiveFailures": failures, "authFailed": auth_failed})
        services.notifications.account_sync_failed(account.id)  # reads the state just recorded
    return report
