"""How a pulled message is recognised again: ingest ids and seen-set keys.

* The ingest id (a uuid5) names one message of one account's mailbox: the IMAP folder, its
  UIDVALIDITY and the UID, or the POP3 UIDL. Accepting the same message twice under the same id
  stores it once, so a sync that dies between accepting a chunk and saving its progress repeats
  that chunk harmlessly.
* The seen key survives a UIDVALIDITY change (IMAP: the folder, the Message-ID and the size; a
  message without a Message-ID: a digest of its whole header block and the size) or is the UIDL
  itself (POP3, prefixed ``pop3:``).
"""

from __future__ import annotations

import hashlib
import re
import uuid

_NAMESPACE = uuid.UUID("6b0b7c1e-3f7a-5a4e-9d7e-6c6f676d6169")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_RETURN_PATH = re.compile(rb"^return-path[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"<([^<>\s]*)>")
MAX_UIDL = 70  # RFC 1939


def imap_ingest_id(account_uuid: str, folder: str, uidvalidity: int, uid: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"imap\0{account_uuid}\0{folder}\0{uidvalidity}\0{uid}"))


def pop3_ingest_id(account_uuid: str, uidl: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"pop3\0{account_uuid}\0{uidl}"))


def header_block(raw: bytes) -> bytes:
    """The header section with the empty line that ends it (as IMAP's ``BODY[HEADER]`` returns it)."""
    end = _HEADER_END.search(raw)
    return raw if end is None else raw[:end.end()]


def message_id(headers: bytes) -> str | None:
    """The first Message-ID field of a header block, unfolded; None when there is none (or it is empty)."""
    match = _MESSAGE_ID.search(headers)
    if match is None:
        return None
    value = b" ".join(match.group(1).split()).decode("utf-8", "replace")
    return value or None


def return_path(headers: bytes) -> str:
    """The envelope sender a delivering server recorded, or ""."""
    match = _RETURN_PATH.search(headers)
    if match is None:
        return ""
    found = _ADDRESS.search(match.group(1).decode("utf-8", "replace"))
    return found.group(1)[:320] if found else ""


def imap_key(folder: str, size: int, *, msgid: str | None = None, headers: bytes | None = None) -> str:
    """The seen key of a message in ``folder``: by Message-ID when it has one, else by its headers."""
    digest = hashlib.sha256(folder.encode("utf-8", "surrogatepass") + b"\0")
    if msgid is not None:
        digest.update(b"m\0" + msgid.encode("utf-8", "surrogatepass"))
    else:
        digest.update(b"h\0" + (headers or b""))
    return f"imap:{digest.hexdigest()[:40]}:{size}"


def imap_key_of(folder: str, raw: bytes, size: int) -> str:
    headers = header_block(raw)
    msgid = message_id(headers)
    return imap_key(folder, size, msgid=msgid, headers=None if msgid else headers)


def pop3_key(uidl: str) -> str:
    """``pop3:`` and the UIDL; an over-long one (a server defect) by its digest, so it still fits."""
    if len(uidl) <= MAX_UIDL:
        return f"pop3:{uidl}"
    return f"pop3:#{hashlib.sha256(uidl.encode('utf-8', 'surrogateescape')).hexdigest()}"
