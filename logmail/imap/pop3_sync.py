"""Pulling new mail out of a POP3 maildrop.

POP3 has no folders and no stable message numbers; the UIDL is a message's identity. A sync lists
the UIDLs (one round trip), looks them up in the account's seen set, and RETRieves only the ones it
has not seen, about 100 per durable commit. Nothing is ever deleted from the server: logmail sends
no DELE, and QUIT therefore changes nothing but flags some servers keep for POP3 themselves.

Duplicate or over-long UIDLs (RFC 1939 allows 70 characters) are a server defect: they are
reported in the account's figures, never a reason to import a message twice (the first message of
a duplicated UIDL is imported; an over-long UIDL is remembered by its digest).
"""

from __future__ import annotations

import logging
import poplib
from typing import Any

from logmail.imap.errors import MailboxUnreachableError
from logmail.imap.identity import MAX_UIDL, pop3_ingest_id, pop3_key
from logmail.imap.importer import AccountImport, Pulled

log = logging.getLogger("logmail.imap")

FOLDER = "INBOX"
CHUNK_MESSAGES = 100
CHUNK_BYTES = 16 * 1024 * 1024


def sync_maildrop(client: poplib.POP3, run: AccountImport) -> dict[str, dict[str, Any]]:
    """Import what is new in the maildrop; returns figures for sync_stats (``{"INBOX": {...}}``)."""
    uidls, defects = _uidls(client)
    stats: dict[str, Any] = {"messages": len(uidls), "uidlDefects": defects}
    if defects:
        log.warning("account %s: the POP3 server reports %d duplicate or over-long UIDL(s)", run.account.id, defects)
    keys = {num: pop3_key(uidl) for num, uidl in uidls.items()}
    known = run.known_keys(keys.values())
    new = [num for num in sorted(uidls) if keys[num] not in known]
    run.already_seen += len(uidls) - len(new)
    if new:
        sizes = _sizes(client)
        chunk: list[int] = []
        total = 0
        for num in new:
            if chunk and (len(chunk) >= CHUNK_MESSAGES or total + sizes.get(num, 0) > CHUNK_BYTES):
                if not _import(client, chunk, uidls, keys, sizes, run):
                    break
                chunk, total = [], 0
            chunk.append(num)
            total += sizes.get(num, 0)
        else:
            if chunk:
                _import(client, chunk, uidls, keys, sizes, run)
    stats["imported"] = run.per_folder.get(FOLDER, 0)
    return {FOLDER: stats}


def _import(client: poplib.POP3, chunk: list[int], uidls: dict[int, str], keys: dict[int, str],
            sizes: dict[int, int], run: AccountImport) -> bool:
    if not run.keep_going():
        return False
    allowed = run.room(len(chunk))
    take = chunk[:allowed]
    too_big = [num for num in take if run.too_big(sizes.get(num, 0))]
    pulled = []
    for num in take:
        if num in too_big:
            continue
        _resp, lines, _octets = client.retr(num)
        raw = b"\r\n".join(lines) + b"\r\n"
        pulled.append(Pulled(keys[num], pop3_ingest_id(run.account.uuid, uidls[num]), raw))
    # Too big for the tier: remembered as seen, so they are not downloaded on every sync.
    run.commit(FOLDER, pulled, also_seen=[keys[num] for num in too_big])
    if allowed < len(chunk):
        run.room(1)  # raises ImportRefusedError: the quota ran out with messages still waiting
    return True


def _uidls(client: poplib.POP3) -> tuple[dict[int, str], int]:
    try:
        _resp, lines, _octets = client.uidl()
    except poplib.error_proto as exc:
        raise MailboxUnreachableError("the POP3 server does not list UIDLs, which logmail needs to tell "
                                      f"messages apart: {exc}") from None
    uidls: dict[int, str] = {}
    seen: set[str] = set()
    defects = 0
    for line in lines:
        num, _, uidl = line.decode("utf-8", "surrogateescape").strip().partition(" ")
        uidl = uidl.strip()
        if not num.isdigit() or not uidl:
            continue
        if uidl in seen:
            defects += 1
            continue
        if len(uidl) > MAX_UIDL:
            defects += 1
        seen.add(uidl)
        uidls[int(num)] = uidl
    return uidls, defects


def _sizes(client: poplib.POP3) -> dict[int, int]:
    _resp, lines, _octets = client.list()
    sizes = {}
    for line in lines:
        num, _, size = line.decode("ascii", "replace").partition(" ")
        if num.isdigit() and size.strip().isdigit():
            sizes[int(num)] = int(size.strip())
    return sizes
