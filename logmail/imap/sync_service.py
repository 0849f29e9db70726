"""One sync of one mailbox account, and what the account row says about it afterwards.

Several daemons share the accounts: a sync runs only under the account's lease (``account:<id>``
in SQL, 15 s, renewed every 5 s by a heartbeat while the sync runs), so two daemons never sync the
same account at once, and a daemon that dies mid-sync leaves a lease that runs out within seconds
and an ``is_syncing`` flag that the next look for due accounts clears (``clear_stale``).

Afterwards the account row tells the truth:

* success: ``last_sync_at``, ``sync_stats``, no ``last_error``, next sync one ``sync_interval`` on;
* wrong credentials (or a password that no longer decrypts): ``auth_failed`` and ``last_error``; the
  dispatcher leaves the account alone until someone edits it;
* anything else (unreachable, TLS, timeout, storage down, quota): ``last_error``,
  ``consecutive_failures`` + 1 and the next try after a backoff of 30 s doubling per failure, at
  most an hour, ±20 % jitter so that accounts on one broken server do not retry in step.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from logmail.config import AccountsSettings
from logmail.errors import LogmailError, TemporaryError
from logmail.imap.connection import Endpoint, imap_session, pop3_session
from logmail.imap.errors import ImportRefusedError, MailboxAuthError, MailboxError
from logmail.imap.imap_sync import sync_folders
from logmail.imap.importer import AccountImport
from logmail.imap.pop3_sync import sync_maildrop
from logmail.services.accept import DurableAcceptor
from logmail.services.credentials import CredentialError, CredentialVault
from logmail.services.policy import PolicyService
from logmail.store import leases
from logmail.store.database import Database
from logmail.store.models import MailAccount

log = logging.getLogger("logmail.imap")

LEASE_SECONDS = 15.0  # renewed every third of it while a sync runs; a dead daemon's accounts free up this fast
FIRST_BACKOFF = 30.0
MAX_BACKOFF = 3600.0
JITTER = 0.2


def _now_ms() -> int:
    return int(time.time() * 1000)


def lease_name(account_id: int) -> str:
    return f"account:{account_id}"


def request_sync(db: Database, account_id: int) -> bool:
    """Make the account due now: a daemon with the scheduler role syncs it within
    ``accounts.dispatch_interval`` seconds. Returns False if there is no such account."""
    with db.write_connection() as conn:
        return bool(conn.execute(update(MailAccount).where(MailAccount.id == account_id)
                                 .values(next_sync_at=0)).rowcount)


def backoff_seconds(failures: int, rng: random.Random | None = None) -> float:
    """Seconds before the next try after ``failures`` failures in a row (1 → about 30 s)."""
    base = min(FIRST_BACKOFF * 2 ** max(failures - 1, 0), MAX_BACKOFF)
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


class AccountSyncService:
    def __init__(self, db: Database, acceptor: DurableAcceptor, vault: CredentialVault, policy: PolicyService,
                 settings: AccountsSettings, *, owner: str | None = None, clock: Callable[[], int] = _now_ms,
                 stopping: threading.Event | None = None, lease_seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.acceptor = acceptor
        self.vault = vault
        self.policy = policy
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.stopping = stopping or threading.Event()
        self.lease_seconds = lease_seconds
        # Told (account, error, auth_failed, failures) after each failure is recorded; the daemon's hook
        # decides what is news (once per failing streak). Never fails a sync.
        self.on_failure: Callable[[MailAccount, str, bool, int], None] | None = None

    @classmethod
    def from_services(cls, services, **kw) -> "AccountSyncService":
        return cls(services.db, services.acceptor, services.vault, services.policy, services.settings.accounts, **kw)

    @property
    def lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)

    # -- choosing work -------------------------------------------------------------------------------

    def due(self, limit: int) -> list[int]:
        """Accounts whose next sync is due, most overdue first."""
        with self.db.connect() as conn:
            return list(conn.execute(
                select(MailAccount.id)
                .where(MailAccount.is_enabled.is_(True), MailAccount.is_sync_enabled.is_(True),
                       MailAccount.auth_failed.is_(False), MailAccount.next_sync_at <= self.clock())
                .order_by(MailAccount.next_sync_at, MailAccount.id).limit(limit)
            ).scalars())

    def claim(self, account_id: int) -> bool:
        """Take the account's lease: True means this process, and no other, may sync it now."""
        return leases.acquire(self.db, lease_name(account_id), self.owner, self.lease_ms, self.clock())

    def release(self, account_id: int) -> None:
        try:
            leases.release(self.db, lease_name(account_id), self.owner)
        except LogmailError:  # it runs out by itself
            log.warning("account %s: could not release its lease", account_id)

    def clear_stale(self) -> int:
        """``is_syncing`` left behind by a daemon that died mid-sync (its lease ran out): cleared."""
        now = self.clock()
        with self.db.connect() as conn:
            candidates = list(conn.execute(
                select(MailAccount.id).where(MailAccount.is_syncing.is_(True),
                                             MailAccount.sync_started_at < now - self.lease_ms)
            ).scalars())
        cleared = 0
        for account_id in candidates:
            if leases.holder(self.db, lease_name(account_id), now) is None:
                with self.db.write_connection() as conn:
                    cleared += conn.execute(update(MailAccount)
                                            .where(MailAccount.id == account_id, MailAccount.is_syncing.is_(True))
                                            .values(is_syncing=False)).rowcount
        return cleared

    # -- syncing -------------------------------------------------------------------------------------

    def sync(self, account_id: int, *, force: bool = True) -> dict[str, Any]:
        """Sync one account now (``force``) or only if it is due; returns what happened:
        ``{"status": "ok" | "busy" | "not_due" | "skipped" | "auth_failed" | "error", ...}``."""
        if not self.claim(account_id):
            return {"accountId": account_id, "status": "busy"}
        try:
            return self.sync_claimed(account_id, force=force)
        finally:
            self.release(account_id)

    def sync_claimed(self, account_id: int, *, force: bool = False) -> dict[str, Any]:
        """Sync an account whose lease this process holds (the caller releases it)."""
        started = self.clock()
        with self.db.write() as session:
            account = session.get(MailAccount, account_id)
            if account is None:
                return {"accountId": account_id, "status": "skipped", "reason": "no such account"}
            if not (account.is_enabled and account.is_sync_enabled) or account.auth_failed:
                return {"accountId": account_id, "status": "skipped",
                        "reason": "authentication failed" if account.auth_failed else "sync is off"}
            if not force and account.next_sync_at > started:
                return {"accountId": account_id, "status": "not_due"}  # another daemon just did it
            account.is_syncing = True
            account.sync_started_at = started
        heartbeat = _Heartbeat(self, lease_name(account_id))
        interrupted = threading.Event()

        def keep_going() -> bool:
            if self.stopping.is_set() or heartbeat.lost.is_set():
                interrupted.set()
                return False
            return True

        run = AccountImport(self.db, self.acceptor, self.policy, account, keep_going=keep_going, clock=self.clock)
        heartbeat.start()
        try:
            folders = self._pull(account, run)
        except BaseException as exc:
            return self._failed(account, run, started, exc)
        finally:
            heartbeat.stop()
        return self._succeeded(account, run, started, folders, interrupted=interrupted.is_set())

    def _pull(self, account: MailAccount, run: AccountImport) -> dict[str, dict[str, Any]]:
        try:
            password = self.vault.decrypt(account.uuid, account.password_encrypted)
        except CredentialError as exc:
            raise MailboxAuthError(exc.message) from None
        endpoint = Endpoint(account.protocol, account.hostname, account.port, account.encryption, account.username,
                            self.settings.timeout)
        if account.protocol == "pop3":
            with pop3_session(endpoint, password) as client:
                return sync_maildrop(client, run)
        with imap_session(endpoint, password) as client:
            return sync_folders(client, list(account.folders or ["INBOX"]), run)

    # -- what the row says afterwards -------------------------------------------------------------------

    def _interval_ms(self, account: MailAccount) -> int:
        return int(max(account.sync_interval, self.settings.min_sync_interval) * 1000)

    def _stats(self, account: MailAccount, run: AccountImport, started: int,
               folders: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
        previous = account.sync_stats or {}
        merged_folders = dict(previous.get("folders") or {})
        merged_folders.update(folders or {})
        return {
            "lastRunMs": self.clock() - started,
            "imported": run.imported,
            "seen": run.already_seen,
            "skippedTooBig": run.skipped_too_big,
            "folders": merged_folders,
            "totalImported": int(previous.get("totalImported") or 0) + run.imported,
        }

    def _succeeded(self, account: MailAccount, run: AccountImport, started: int,
                   folders: dict[str, dict[str, Any]], *, interrupted: bool) -> dict[str, Any]:
        now = self.clock()
        folder_errors = [f["error"] for f in folders.values() if f.get("error")]
        values: dict[str, Any] = {
            "is_syncing": False, "sync_stats": self._stats(account, run, started, folders),
            "consecutive_failures": 0,
            # Cut short (shutdown, lost lease): due again at once, so whoever comes next carries on.
            "next_sync_at": now if interrupted else now + self._interval_ms(account),
        }
        if not interrupted:
            values["last_sync_at"] = now
        if folder_errors:
            values.update(last_error="; ".join(folder_errors)[:1000], last_error_at=now)
        else:
            values.update(last_error=None, last_error_at=None)
        self._save(account, values)
        if run.imported:
            log.info("account %s: imported %d message(s) in %d ms", account.id, run.imported, now - started)
        return {"accountId": account.id, "status": "ok", "imported": run.imported, "seen": run.already_seen,
                "folders": folders, "errors": folder_errors, "interrupted": interrupted}

    def _failed(self, account: MailAccount, run: AccountImport, started: int, exc: BaseException) -> dict[str, Any]:
        now = self.clock()
        stats = self._stats(account, run, started, None)
        if isinstance(exc, MailboxAuthError):
            log.warning("account %s: %s; not retrying until the account is changed", account.id, exc.message)
            self._save(account, {"is_syncing": False, "auth_failed": True, "last_error": exc.message[:1000],
                                    "last_error_at": now, "sync_stats": stats,
                                    "next_sync_at": now + self._interval_ms(account)})
            self._tell(account, exc.message, True, (account.consecutive_failures or 0) + 1)
            return {"accountId": account.id, "status": "auth_failed", "error": exc.message, "imported": run.imported}
        failures = (account.consecutive_failures or 0) + 1
        if isinstance(exc, (MailboxError, ImportRefusedError, TemporaryError)):
            message = exc.message
            # "Cannot connect" once per outage, not once per try.
            (log.warning if failures == 1 else log.debug)("account %s: sync failed: %s", account.id, message)
        else:
            message = "internal error while syncing; see the daemon's log"
            log.error("account %s: sync failed", account.id, exc_info=(type(exc), exc, exc.__traceback__))
        delay = backoff_seconds(failures)
        if isinstance(exc, ImportRefusedError):
            delay = max(delay, self._interval_ms(account) / 1000)  # a quota does not return in 30 s
        self._save(account, {"is_syncing": False, "last_error": message[:1000], "last_error_at": now,
                                "consecutive_failures": failures, "sync_stats": stats,
                                "next_sync_at": now + int(delay * 1000)})
        self._tell(account, message, False, failures)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: recorded, and still on their way
        return {"accountId": account.id, "status": "error", "error": message, "imported": run.imported,
                "retryInMs": int(delay * 1000)}

    def _tell(self, account: MailAccount, error: str, auth_failed: bool, failures: int) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(account, error, auth_failed, failures)
        except Exception:  # a notification that fails must not turn into a failed sync
            log.warning("account %s: could not report the failure", account.id, exc_info=True)

    def _save(self, account: MailAccount, values: dict[str, Any]) -> None:
        """Record the outcome. If someone edited the account meanwhile (a new password, "sync now"),
        their answer stands: the verdict on the old settings (auth_failed, error, next try) is dropped."""
        # updated_at is left alone: it says when a person last changed the account.
        try:
            with self.db.write_connection() as conn:
                same = update(MailAccount).where(MailAccount.id == account.id,
                                                 MailAccount.updated_at == account.updated_at)
                if not conn.execute(same.values(**values)).rowcount:
                    kept = {k: v for k, v in values.items() if k not in _VERDICT}
                    conn.execute(update(MailAccount).where(MailAccount.id == account.id).values(**kept))
        except LogmailError as exc:
            # The row stays "syncing" until clear_stale notices; the lease is what really guards.
            log.warning("account %s: could not record the sync's outcome: %s", account.id, exc)


_VERDICT = ("auth_failed", "last_error", "last_error_at", "consecutive_failures", "next_sync_at")


class _Heartbeat(threading.Thread):
    """Renews a sync's lease every third of its time, whatever the sync is waiting for; if the
    lease is lost (the database was away longer than the lease), the sync stops after its chunk."""

    def __init__(self, service: AccountSyncService, lease: str) -> None:
        super().__init__(name=f"logmail-lease-{lease}", daemon=True)
        self.service = service
        self.lease = lease
        self.lost = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        service = self.service
        while not self._done.wait(service.lease_seconds / 3):
            try:
                held = leases.acquire(service.db, self.lease, service.owner, service.lease_ms, service.clock())
            except LogmailError:
                continue  # the database is away; the lease has two more thirds to go
            if not held:
                log.warning("%s: lease lost; the sync stops after its current chunk", self.lease)
                self.lost.set()
                return

    def stop(self) -> None:
        self._done.set()
