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
