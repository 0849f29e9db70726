"""Trying an account's settings: connect, log in, look, log out, and import nothing."""

from __future__ import annotations

from typing import Any

from logmail.imap.connection import Endpoint, imap_session, pop3_session


def check_login(protocol: str, hostname: str, port: int, encryption: str, username: str, password: str,
                timeout: float) -> dict[str, Any]:
    """Log in to the mailbox and describe what is there.

    IMAP: ``{"protocol": "imap", "messages": <in INBOX>, "folders": [...], "idle": bool}``;
    POP3: ``{"protocol": "pop3", "messages": n, "size": bytes}``. Raises MailboxAuthError when the
    server refuses the credentials and MailboxUnreachableError for everything else (connection, TLS,
    timeout, protocol); their messages never contain the password.
    """
    endpoint = Endpoint(protocol, hostname, port, encryption, username, timeout)
    if protocol == "pop3":
        with pop3_session(endpoint, password) as client:
            count, size = client.stat()
        return {"protocol": "pop3", "encryption": encryption, "messages": count, "size": size}
    if protocol != "imap":
        raise ValueError(f"unknown protocol {protocol!r}")
    with imap_session(endpoint, password) as client:
        folders = [name for _flags, _delimiter, name in client.list_folders()]
        status = client.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "UIDVALIDITY"])
        idle = client.has_capability("IDLE")
    return {"protocol": "imap", "encryption": encryption, "messages": status.get(b"MESSAGES", 0),
            "folders": sorted(folders, key=lambda f: (f.upper() != "INBOX", f.lower())), "idle": idle}
