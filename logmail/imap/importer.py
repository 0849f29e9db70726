"""Where a sync run meets logmail: admission, durable acceptance, the seen set and saved progress.

The protocol code (``imap_sync``, ``pop3_sync``) talks to the server; everything it learns goes
through one ``AccountImport`` per run. ``commit`` is the crash-safety boundary: a chunk's messages
are durably accepted (the same door SMTP mail walks through) *before* its seen keys and the folder's
new high-water mark are committed, so a crash in between repeats the chunk (same ingest ids: stored
once) and never skips one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from logmail.imap.errors import ImportRefusedError
from logmail.imap.identity import header_block, return_path
from logmail.services.accept import DurableAcceptor, Envelope
from logmail.services.policy import PolicyService
from logmail.store import messages as message_repo
from logmail.store import usage as usage_repo
from logmail.store.database import Database
from logmail.store.models import MailAccount, MailAccountFolder, MailAccountSeen

_KEYS_PER_QUERY = 500
RESUMES = "sync resumes by itself when the organisation may receive mail again"


@dataclass(slots=True)
class Pulled:
    """One message fetched from the server, named for logmail."""

    key: str
    ingest_id: str
    raw: bytes


@dataclass(slots=True)
class FolderState:
    uidvalidity: int | None
    last_uid: int
    uidnext: int | None


def _now_ms() -> int:
    return int(time.time() * 1000)


class AccountImport:
    """One sync run of one account. ``account`` is a detached MailAccount row."""

    def __init__(self, db: Database, acceptor: DurableAcceptor, policy: PolicyService, account: MailAccount, *,
                 keep_going: Callable[[], bool] = lambda: True, clock: Callable[[], int] = _now_ms) -> None:
        self.db = db
        self.acceptor = acceptor
        self.policy = policy
        self.account = account
        self.keep_going = keep_going
        self.clock = clock
        self.imported = 0
        self.already_seen = 0
        self.skipped_too_big = 0
        self.per_folder: dict[str, int] = {}
        self._budget: int | None | bool = False  # False: not looked up yet

    # -- what the server's messages mean here ------------------------------------------------------

    def folder_state(self, folder: str) -> FolderState | None:
        with self.db.read() as session:
            row = session.get(MailAccountFolder, (self.account.id, folder))
            return None if row is None else FolderState(row.uidvalidity, row.last_uid, row.uidnext)

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self.db.connect() as conn:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                part = keys[start:start + _KEYS_PER_QUERY]
                found.update(conn.execute(
                    select(MailAccountSeen.key)
                    .where(MailAccountSeen.account_id == self.account.id, MailAccountSeen.key.in_(part))
                ).scalars())
        return found

    def previous_stats(self, folder: str) -> dict[str, Any]:
        return dict(((self.account.sync_stats or {}).get("folders") or {}).get(folder) or {})

    # -- admission ---------------------------------------------------------------------------------------

    def room(self, wanted: int) -> int:
        """How many of ``wanted`` more messages the organisation may take (at least 1), or
        ImportRefusedError. Local mode: all of them."""
        if wanted <= 0 or not self.policy.platform:
            return wanted
        decision = self.policy.check_organization(self.account.organization_id, count=False)
        if not decision.accepted:
            raise ImportRefusedError(f"{decision.text}; {RESUMES}")
        if self._budget is False:
            self._budget = self._monthly_budget()
        if self._budget is None:
            return wanted
        left = self._budget - self.imported
        if left <= 0:
            raise ImportRefusedError(f"monthly quota reached; {RESUMES}")
        return min(wanted, left)

    def _monthly_budget(self) -> int | None:
        # The policy counts stored mail only; a run also counts what it accepted itself, so one
        # big first sync cannot overshoot the quota by a whole mailbox.
        tier = self.policy.organization_tier(self.account.organization_id)
        if tier is None or tier.emails_per_month is None:
            return None
        with self.db.connect() as conn:
            used = usage_repo.emails_this_month(conn, self.account.organization_id, self.clock())
        return max(0, tier.emails_per_month - used)

    def too_big(self, size: int) -> bool:
        """Larger than the organisation's tier accepts: skipped (and counted), never fetched."""
        if not self.policy.platform:
            return False
        tier = self.policy.organization_tier(self.account.organization_id)
        if tier is not None and tier.max_message_size is not None and size > tier.max_message_size:
            self.skipped_too_big += 1
            return True
        return False

    # -- the crash-safety boundary ---------------------------------------------------------------------

    def commit(self, folder: str, messages: list[Pulled], *, progress: FolderState | None = None,
               also_seen: Iterable[str] = ()) -> int:
        """Durably accept ``messages``, then record their keys (and ``also_seen``) and ``progress``
        in one transaction. Returns how many were accepted."""
        account = self.account
        org = account.organization_id
        fresh = messages
        if messages:
            # Stored by an earlier run that died before saving its progress: nothing to accept again.
            with self.db.connect() as conn:
                stored = message_repo.existing_ingest_ids(conn, [(org, m.ingest_id) for m in messages])
            fresh = [m for m in messages if (org, m.ingest_id) not in stored]
        if fresh:
            source = "pop3" if account.protocol == "pop3" else "imap"
            self.acceptor.accept_many([
                (m.raw, Envelope(mail_from=return_path(header_block(m.raw)), rcpt_to=[account.email_address],
                                 source=source, organization_id=org,
                                 extra={"accountId": account.id, "folder": folder}, ingest_id=m.ingest_id))
                for m in fresh
            ])
        keys = list(dict.fromkeys([m.key for m in messages] + list(also_seen)))
        now = self.clock()
        with self.db.write() as session:
            if keys:
                session.execute(
                    insert(MailAccountSeen).prefix_with("OR IGNORE", dialect="sqlite")
                    .prefix_with("IGNORE", dialect="mysql"),
                    [{"account_id": account.id, "key": k, "created_at": now} for k in keys],
                )
            if progress is not None:
                self._save_progress(session, folder, progress, now)
        self.imported += len(fresh)
        self.per_folder[folder] = self.per_folder.get(folder, 0) + len(fresh)
        return len(fresh)

    def _save_progress(self, session, folder: str, progress: FolderState, now: int) -> None:
        row = session.get(MailAccountFolder, (self.account.id, folder))
        if row is None:
            session.add(MailAccountFolder(account_id=self.account.id, folder=folder, uidvalidity=progress.uidvalidity,
                                          last_uid=progress.last_uid, uidnext=progress.uidnext, updated_at=now))
            return
        if row.uidvalidity == progress.uidvalidity:
            # Never backwards: ``UID FETCH n:*`` may hand back an old message, and a repeated
            # chunk must not undo a later one.
            row.last_uid = max(row.last_uid, progress.last_uid)
        else:
            row.uidvalidity, row.last_uid = progress.uidvalidity, progress.last_uid
        row.uidnext = progress.uidnext
        row.updated_at = now
