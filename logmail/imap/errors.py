"""What can go wrong talking to a user's mailbox server, in words safe to show the user.

No message here ever contains the mailbox password: server replies are quoted only after
``scrub`` has taken the password out of them (a server has no business echoing it, but some do).
"""

from __future__ import annotations

from logmail.errors import LogmailError


class MailboxError(LogmailError):
    """The mailbox server could not be used; ``message`` says why, fit for ``lastError``."""

    status = 502
    error = "Mailbox error"


class MailboxAuthError(MailboxError):
    """The server refused the credentials (or the way they were offered): retrying cannot help
    until the account changes."""

    status = 422
    error = "Mailbox authentication failed"


class MailboxUnreachableError(MailboxError):
    """Connecting, TLS, a timeout or a protocol failure: worth trying again later."""

    error = "Mailbox unreachable"


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it, cut to a length that fits ``lastError``."""
    if secret and len(secret) >= 3:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


class ImportRefusedError(LogmailError):
    """The account's organisation may not take more mail now (suspended, monthly quota, storage):
    the sync stops where it is and tries again later."""

    status = 403
    error = "Import refused"
