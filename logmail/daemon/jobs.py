"""The scheduled jobs of the daemon, each only its business step."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from logmail.config import AccountsSettings, RetentionSettings
from logmail.daemon.scheduler import ScheduledJob
from logmail.errors import LogmailError
from logmail.imap.idle import IdleWatcher
from logmail.imap.sync_service import AccountSyncService
from logmail.services.retention import RetentionService
from logmail.store.models import MailAccount

log = logging.getLogger("logmail.scheduler")


class RetentionJob(ScheduledJob):
    name = "retention"

    def __init__(self, service: RetentionService, settings: RetentionSettings,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.service = service
        self.settings = settings
        self.interval = float(settings.interval)
        self.lease_seconds = max(120.0, settings.interval / 2)
        self.clock = clock

    def run(self, keep_alive: Callable[[], bool]) -> None:
        # Each organisation's tier may keep mail for fewer days than the installation-wide limit.
        self.service.apply_policy(self.clock(), self.settings.max_age_days, batch_size=self.settings.batch_size,
                                  keep_alive=keep_alive)


class ImapSyncJob:
    """One sync of one mailbox account (IMAP or POP3), run while this daemon holds the account's
    lease; the lease is given back when the run ends, whatever happened."""

    def __init__(self, service: AccountSyncService, account_id: int) -> None:
        self.service = service
        self.account_id = account_id

    @property
    def name(self) -> str:
        return f"imap-sync:{self.account_id}"

    def run(self) -> dict:
        try:
            return self.service.sync_claimed(self.account_id)
        finally:
            self.service.release(self.account_id)


# A dead daemon's "is_syncing" is cleared on one look in this many (about a minute by default).
STALE_CHECK_TICKS = 12


class AccountSyncDispatcher:
    """Every ``accounts.dispatch_interval`` seconds, hand due mailbox accounts to a small pool of
    sync threads (``accounts.max_parallel_syncs``).

    Unlike the jobs of ``JobRunner`` the dispatcher holds no lease of its own: every daemon with
    the scheduler role runs one, and they share the accounts because each account is claimed with
    its own lease (``account:<id>``) before it is handed to a thread. A daemon that is full takes
    nothing; one that dies mid-sync loses its leases when they run out, and another daemon's next
    look picks the accounts up. The dispatcher also keeps the IDLE watchers of opted-in accounts.
    """

    job_id = "account-dispatch"

    def __init__(self, service: AccountSyncService, settings: AccountsSettings, *, idle: bool = True) -> None:
        self.service = service
        self.settings = settings
        self.idle = idle
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.max_parallel_syncs),
                                        thread_name_prefix="logmail-sync")
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._watchers: dict[int, tuple[int, IdleWatcher]] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._failing = False
        self._ticks = 0

    def start(self) -> None:
        self._scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1}, timezone="UTC")
        self._scheduler.add_job(self.tick, "interval", seconds=self.settings.dispatch_interval, id=self.job_id,
                                name=self.job_id, next_run_time=datetime.now(timezone.utc))
        self._scheduler.start()
        log.info("mailbox sync dispatcher started: every %g s, up to %d at a time",
                 self.settings.dispatch_interval, self.settings.max_parallel_syncs)

    def kick(self, _account_id: int | None = None) -> None:
        """Look for due accounts now rather than at the next interval (IDLE saw new mail)."""
        if self._scheduler is not None and not self.service.stopping.is_set():
            try:
                self._scheduler.modify_job(self.job_id, next_run_time=datetime.now(timezone.utc))
            except Exception:  # shutting down
                pass

    def tick(self) -> int:
        """One look: returns how many syncs it started."""
        if not self._tick_lock.acquire(blocking=False):
            return 0
        try:
            if self._ticks % STALE_CHECK_TICKS == 0:
                self.service.clear_stale()
            self._ticks += 1
            started = self._dispatch()
            if self.idle:
                self._reconcile_watchers()
            if self._failing:
                log.info("mailbox sync dispatcher: the database is back")
            self._failing = False
            return started
        except Exception as exc:  # said once per outage; the next tick tries again
            if not self._failing:
                log.warning("mailbox sync dispatcher cannot look for due accounts: %s", exc,
                            exc_info=not isinstance(exc, LogmailError))
            self._failing = True
            return 0
        finally:
            self._tick_lock.release()

    def _dispatch(self) -> int:
        with self._lock:
            free = self.settings.max_parallel_syncs - len(self._running)
            busy = set(self._running)
        if free <= 0 or self.service.stopping.is_set():
            return 0
        started = 0
        # More candidates than free threads: some may be taken by other daemons meanwhile.
        for account_id in self.service.due(free * 4 + len(busy)):
            if started >= free or self.service.stopping.is_set():
                break
            if account_id in busy or not self.service.claim(account_id):
                continue
            with self._lock:
                self._running.add(account_id)
            self._pool.submit(self._run, ImapSyncJob(self.service, account_id))
            started += 1
        return started

    def _run(self, job: ImapSyncJob) -> None:
        try:
            job.run()
        except LogmailError as exc:  # the database went away before the outcome could be recorded
            log.warning("%s could not run: %s", job.name, exc)
        except Exception:
            log.exception("%s failed", job.name)
        finally:
            with self._lock:
                self._running.discard(job.account_id)

    def _reconcile_watchers(self) -> None:
        with self.service.db.connect() as conn:
            wanted = dict(conn.execute(
                select(MailAccount.id, MailAccount.updated_at)
                .where(MailAccount.use_idle.is_(True), MailAccount.protocol == "imap",
                       MailAccount.is_enabled.is_(True), MailAccount.is_sync_enabled.is_(True),
                       MailAccount.auth_failed.is_(False))
            ).all())
        for account_id, (version, watcher) in list(self._watchers.items()):
            # Gone or changed (a new password?): a fresh one below. One that ended by itself (login
            # refused, no IDLE on the server) stays ended until the account changes.
            if wanted.get(account_id) != version:
                watcher.stop()
                del self._watchers[account_id]
        for account_id, version in wanted.items():
            if account_id not in self._watchers and not self.service.stopping.is_set():
                self._watchers[account_id] = (version, IdleWatcher(self.service, account_id, self.kick).start())

    def stop(self) -> None:
        """Stop looking, let running syncs finish their chunk (progress is saved), end IDLE."""
        self.service.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)  # waits for a look in progress
            self._scheduler = None
        for _, watcher in self._watchers.values():
            watcher.stop()
        self._pool.shutdown(wait=True)
        for _, watcher in self._watchers.values():
            watcher.join(5)
        self._watchers.clear()
