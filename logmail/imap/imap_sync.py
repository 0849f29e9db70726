"""Pulling new mail out of IMAP folders.

Per folder:

1. ``STATUS folder (UIDNEXT UIDVALIDITY)``: one round trip. Same UIDVALIDITY and UIDNEXT as last
   time means nothing arrived, and the folder costs nothing more.
2. ``EXAMINE`` (read-only: no flag of the user's changes, not even \\Recent), then
   ``UID FETCH last+1:* (RFC822.SIZE)`` for the new UIDs and their sizes. ``n:*`` always returns the
   highest message even when it is below n, so only ``uid > last`` counts.
3. ``UID FETCH <about 100 UIDs> (BODY.PEEK[] RFC822.SIZE)`` (PEEK: the user's mail stays unread),
   each chunk durably accepted and then its progress committed (``AccountImport.commit``).

When UIDVALIDITY changed, the UIDs mean nothing any more: every message's Message-ID and size
are fetched (``BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]``, a few dozen bytes each; the whole header
for a message without a Message-ID) and matched against the account's seen set, and only the
messages not seen before are imported. A folder whose UIDVALIDITY changes on several syncs in a
row (a server that does not keep identities) is paused and reported until the account is edited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from logmail.imap.errors import MailboxUnreachableError
from logmail.imap.identity import header_block, imap_ingest_id, imap_key, imap_key_of, message_id
from logmail.imap.importer import AccountImport, FolderState, Pulled

log = logging.getLogger("logmail.imap")

CHUNK_MESSAGES = 100
CHUNK_BYTES = 16 * 1024 * 1024
MATCH_CHUNK = 500
MAX_UIDVALIDITY_RESETS = 3
_BODY = b"BODY[]"
_SIZE = b"RFC822.SIZE"
_MSGID_FIELD = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
_MSGID_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


class FolderUnavailable(Exception):
    """One folder cannot be synced (missing, not selectable); the others still are."""


def sync_folders(client: IMAPClient, folders: list[str], run: AccountImport) -> dict[str, dict[str, Any]]:
    """Sync every folder of the account; returns per-folder figures (and errors) for sync_stats."""
    results: dict[str, dict[str, Any]] = {}
    for folder in folders:
        if not run.keep_going():
            break
        sync = FolderSync(client, folder, run)
        try:
            results[folder] = sync.run()
        except FolderUnavailable as exc:
            results[folder] = {**sync.stats, "error": str(exc)}
    return results


class FolderSync:
    def __init__(self, client: IMAPClient, folder: str, run: AccountImport) -> None:
        self.client = client
        self.folder = folder
        self.run_ = run
        self.stats = run.previous_stats(folder)
        self.stats.pop("error", None)

    def run(self) -> dict[str, Any]:
        run, folder = self.run_, self.folder
        saved = run.folder_state(folder)
        try:
            status = self.client.folder_status(folder, ["UIDNEXT", "UIDVALIDITY"])
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as exc:
            raise FolderUnavailable(f"folder {folder!r} cannot be read: {_text(exc)}") from None
        uidvalidity, uidnext = status.get(b"UIDVALIDITY"), status.get(b"UIDNEXT")
        if saved is not None and saved.uidvalidity == uidvalidity and uidnext is not None \
                and uidnext <= saved.last_uid + 1:
            self.stats["uidvalidityResets"] = 0
            return self._finish(saved)
        if _changed(saved, uidvalidity):
            return self._after_uidvalidity_change(saved)
        uidvalidity, uidnext, exists = self._examine()
        if _changed(saved, uidvalidity):  # it changed between STATUS and EXAMINE
            return self._after_uidvalidity_change(saved)
        self.stats["uidvalidityResets"] = 0
        last = saved.last_uid if saved is not None and saved.uidvalidity == uidvalidity else 0
        sizes = self._sizes(f"{last + 1}:*", above=last) if exists else {}
        uids = sorted(sizes)
        if self._import(uids, sizes, uidvalidity, uidnext):
            # Every UID below EXAMINE's UIDNEXT is now in or expunged: the mark goes there even when
            # nothing came (a message added and expunged again), so the next poll is a single STATUS.
            run.commit(folder, [], progress=FolderState(uidvalidity, _done_up_to(uids, uidnext, last), uidnext))
        return self._finish(run.folder_state(folder) or FolderState(uidvalidity, last, uidnext))

    # -- the two paths ------------------------------------------------------------------------------

    def _import(self, uids: list[int], sizes: dict[int, int], uidvalidity: int, uidnext: int | None) -> bool:
        """Fetch and commit ``uids`` in chunks, progress after each chunk; False if told to stop first."""
        run = self.run_
        for chunk in _chunks(uids, sizes):
            if not run.keep_going():
                return False
            allowed = run.room(len(chunk))
            take = chunk[:allowed]
            pulled = self._fetch_bodies([uid for uid in take if not run.too_big(sizes[uid])], uidvalidity)
            known = run.known_keys(p.key for p in pulled)
            run.already_seen += sum(1 for p in pulled if p.key in known)
            run.commit(self.folder, [p for p in pulled if p.key not in known],
                       progress=FolderState(uidvalidity, take[-1], uidnext))
            if allowed < len(chunk):
                run.room(1)  # raises ImportRefusedError: the quota ran out with messages still waiting
        return True

    def _after_uidvalidity_change(self, saved: FolderState) -> dict[str, Any]:
        run, folder = self.run_, self.folder
        resets = int(self.stats.get("uidvalidityResets") or 0) + 1
        paused_at = self.stats.get("pausedAt")
        if paused_at:
            if (run.account.updated_at or 0) <= paused_at:
                raise FolderUnavailable(self.stats.get("pausedReason") or f"folder {folder!r} is paused")
            resets = 1  # edited since: a fresh start
        if resets > MAX_UIDVALIDITY_RESETS:
            reason = (f"folder {folder!r}: UIDVALIDITY changed on {resets} syncs in a row, so the server does "
                      "not keep message identities; this folder is paused until the account is edited")
            self.stats.update(uidvalidityResets=resets, pausedAt=run.clock(), pausedReason=reason)
            log.warning("account %s: %s", run.account.id, reason)
            raise FolderUnavailable(reason)
        self.stats.update(uidvalidityResets=resets, pausedAt=None, pausedReason=None)
        uidvalidity, uidnext, exists = self._examine()
        log.info("account %s folder %r: UIDVALIDITY changed from %s to %s; matching messages by Message-ID",
                 run.account.id, folder, saved.uidvalidity, uidvalidity)
        sizes = self._sizes("1:*", above=0) if exists else {}
        uids = sorted(sizes)
        complete = True
        for start in range(0, len(uids), MATCH_CHUNK):
            if not run.keep_going():
                complete = False
                break
            group = uids[start:start + MATCH_CHUNK]
            keys = self._keys(group, sizes)
            known = run.known_keys(keys.values())
            # Expunged since the listing (no key): nothing to import.
            unknown = [uid for uid in group if uid in keys and keys[uid] not in known]
            run.already_seen += sum(1 for uid in group if uid in keys) - len(unknown)
            if not self._import(unknown, sizes, uidvalidity, uidnext):
                complete = False
                break
            # The matched ones need no fetching; the high-water mark moves past them too.
            run.commit(folder, [], progress=FolderState(uidvalidity, group[-1], uidnext))
        if complete:
            run.commit(folder, [], progress=FolderState(uidvalidity, _done_up_to(uids, uidnext, 0), uidnext))
        return self._finish(run.folder_state(folder) or FolderState(uidvalidity, 0, uidnext))

    # -- IMAP ------------------------------------------------------------------------------------------

    def _examine(self) -> tuple[int, int | None, int]:
        """EXAMINE the folder: (UIDVALIDITY, UIDNEXT, messages in it)."""
        try:
            selected = self.client.select_folder(self.folder, readonly=True)
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as exc:
            raise FolderUnavailable(f"folder {self.folder!r} cannot be opened: {_text(exc)}") from None
        # An empty folder is not asked "UID FETCH 1:*": some servers call "*" there an error.
        return selected[b"UIDVALIDITY"], selected.get(b"UIDNEXT"), int(selected.get(b"EXISTS") or 0)

    def _sizes(self, uid_range: str, *, above: int) -> dict[int, int]:
        """UID → size for ``uid_range`` (imapclient's fetch takes lists, not ``n:*`` ranges)."""
        typ, data = self.client._imap.uid("FETCH", uid_range, "(RFC822.SIZE)")
        if typ != "OK":
            raise MailboxUnreachableError(f"UID FETCH {uid_range} failed: {_text(data)}")
        parsed = parse_fetch_response(data, True, True)
        return {uid: int(item.get(_SIZE) or 0) for uid, item in parsed.items() if uid > above}

    def _fetch_bodies(self, uids: list[int], uidvalidity: int) -> list[Pulled]:
        if not uids:
            return []
        fetched = self.client.fetch(uids, ["BODY.PEEK[]", "RFC822.SIZE"])
        account = self.run_.account
        pulled = []
        for uid in uids:  # a message expunged meanwhile is simply not there
            item = fetched.get(uid)
            raw = item.get(_BODY) if item else None
            if raw is None:
                continue
            size = int(item.get(_SIZE) or len(raw))
            pulled.append(Pulled(imap_key_of(self.folder, raw, size),
                                 imap_ingest_id(account.uuid, self.folder, uidvalidity, uid), raw))
        return pulled

    def _keys(self, uids: list[int], sizes: dict[int, int]) -> dict[int, str]:
        """Seen keys of ``uids`` from their Message-IDs (or, lacking one, their headers)."""
        fetched = self.client.fetch(uids, [_MSGID_FIELD, "RFC822.SIZE"])
        keys: dict[int, str] = {}
        without = []
        for uid in uids:
            item = fetched.get(uid)
            if item is None:
                continue
            size = int(item.get(_SIZE) or sizes.get(uid, 0))
            msgid = message_id(item.get(_MSGID_KEY) or b"")
            if msgid is None:
                without.append(uid)
            else:
                keys[uid] = imap_key(self.folder, size, msgid=msgid)
        if without:
            headers = self.client.fetch(without, ["BODY.PEEK[HEADER]", "RFC822.SIZE"])
            for uid in without:
                item = headers.get(uid)
                if item is not None:
                    size = int(item.get(_SIZE) or sizes.get(uid, 0))
                    keys[uid] = imap_key(self.folder, size, headers=header_block(item.get(b"BODY[HEADER]") or b""))
        return keys

    def _finish(self, state: FolderState) -> dict[str, Any]:
        self.stats.update(uidvalidity=state.uidvalidity, lastUid=state.last_uid, uidnext=state.uidnext,
                          imported=self.run_.per_folder.get(self.folder, 0))
        return self.stats


def _done_up_to(uids: list[int], uidnext: int | None, last: int) -> int:
    return max(max(uids, default=last), (uidnext or 1) - 1, last)


def _changed(saved: FolderState | None, uidvalidity: int) -> bool:
    return saved is not None and saved.uidvalidity is not None and saved.uidvalidity != uidvalidity


def _chunks(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    """About CHUNK_MESSAGES UIDs at a time, fewer when they are big (memory stays bounded)."""
    chunk: list[int] = []
    total = 0
    for uid in uids:
        if chunk and (len(chunk) >= CHUNK_MESSAGES or total + sizes.get(uid, 0) > CHUNK_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += sizes.get(uid, 0)
    if chunk:
        yield chunk


def _text(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)
