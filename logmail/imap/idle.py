"""IMAP IDLE for accounts that opt in: new mail is noticed in seconds instead of at the next poll.

A watcher holds one connection per account in IDLE on the account's first folder. When the server
reports ``EXISTS`` (a message arrived), the watcher makes the account due (``request_sync``) and
asks the dispatcher to look at once; the ordinary sync, under the ordinary lease, does the
importing. IDLE only says when; polling at ``sync_interval`` still covers every folder.

Of several daemons only one watches an account (lease ``idle:<id>``). IDLE is renewed every 25
minutes (RFC 2177: servers may drop it after 30), a broken connection is re-opened with backoff,
and the watcher ends when the account is no longer enabled or opted in (the dispatcher stops it)
or the server refuses the login (the next sync records that on the account).
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient

from logmail.errors import LogmailError
from logmail.imap.connection import Endpoint, imap_session
from logmail.imap.errors import MailboxAuthError
from logmail.imap.sync_service import AccountSyncService, request_sync
from logmail.services.credentials import CredentialError
from logmail.store import leases
from logmail.store.models import MailAccount

log = logging.getLogger("logmail.imap.idle")

RENEW_SECONDS = 25 * 60
CHECK_SECONDS = 30.0


class _LeaseLost(Exception):
    """Another daemon took over this account's IDLE (ours ran out while the database was away)."""


def idle_lease_name(account_id: int) -> str:
    return f"idle:{account_id}"


class IdleWatcher:
    def __init__(self, service: AccountSyncService, account_id: int, on_new_mail: Callable[[int], None],
                 *, check_seconds: float = CHECK_SECONDS, renew_seconds: float = RENEW_SECONDS) -> None:
        self.service = service
        self.account_id = account_id
        self.on_new_mail = on_new_mail
        self.check_seconds = check_seconds
        self.renew_seconds = renew_seconds
        self.stopping = threading.Event()
        self.holding = False  # this daemon holds the account's IDLE lease
        self._client: IMAPClient | None = None
        self._thread = threading.Thread(target=self._run, name=f"logmail-idle-{account_id}", daemon=True)

    @property
    def lease_ms(self) -> int:
        return int((3 * self.check_seconds + self.service.settings.timeout) * 1000)

    def start(self) -> "IdleWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the watcher to end; a connection waiting in IDLE is cut so that it ends at once."""
        self.stopping.set()
        client = self._client
        if client is not None:
            try:
                client.socket().shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------------

    def _claim(self) -> bool | None:
        """Take or renew the account's IDLE lease: True, False (another daemon has it) or None (the
        database did not answer; whoever holds the lease keeps it for a while yet)."""
        try:
            self.holding = leases.acquire(self.service.db, idle_lease_name(self.account_id), self.service.owner,
                                          self.lease_ms, self.service.clock())
        except LogmailError:
            return None
        return self.holding

    def _run(self) -> None:
        failures = 0
        try:
            while not self.stopping.is_set():
                if not self._claim():
                    self.stopping.wait(self.check_seconds)  # another daemon watches this account
                    continue
                try:
                    self._watch()
                    failures = 0
                except _LeaseLost:
                    log.info("account %s: another daemon now holds IDLE", self.account_id)
                    continue
                except MailboxAuthError:
                    log.info("account %s: IDLE stopped: the server refused the login", self.account_id)
                    return
                except CredentialError:
                    return
                except Exception as exc:  # connection trouble: try again later, each time a little later
                    if self.stopping.is_set():
                        return
                    failures += 1
                    delay = min(5.0 * 2 ** failures, 600.0) * random.uniform(0.8, 1.2)
                    (log.warning if failures == 1 else log.debug)(
                        "account %s: IDLE connection lost (%s); reconnecting in %.0f s", self.account_id,
                        getattr(exc, "message", exc), delay)
                    self.stopping.wait(delay)
        finally:
            if self.holding:
                try:
                    leases.release(self.service.db, idle_lease_name(self.account_id), self.service.owner)
                except LogmailError:
                    pass

    def _watch(self) -> None:
        service = self.service
        with service.db.read() as session:
            account = session.get(MailAccount, self.account_id)
        if account is None or not account.is_enabled or not account.use_idle:
            self.stopping.set()
            return
        password = service.vault.decrypt(account.uuid, account.password_encrypted)
        endpoint = Endpoint("imap", account.hostname, account.port, account.encryption, account.username,
                            service.settings.timeout)
        folder = (account.folders or ["INBOX"])[0]
        with imap_session(endpoint, password) as client:
            if not client.has_capability("IDLE"):
                log.info("account %s: the server does not offer IDLE; polling only", self.account_id)
                self.stopping.set()
                return
            self._client = client
            try:
                client.select_folder(folder, readonly=True)
                # Whatever arrived while no one was watching.
                request_sync(service.db, self.account_id)
                self.on_new_mail(self.account_id)
                while not self.stopping.is_set():
                    self._idle_once(client)
            finally:
                self._client = None

    def _idle_once(self, client: IMAPClient) -> None:
        """One IDLE command, ended after ``renew_seconds`` (or on stop, by cutting the connection)."""
        client.idle()
        renew_at = time.monotonic() + self.renew_seconds
        while not self.stopping.is_set() and time.monotonic() < renew_at:
            waited = time.monotonic()
            responses = client.idle_check(timeout=self.check_seconds)
            if self.stopping.is_set():
                return
            if not responses and time.monotonic() - waited < self.check_seconds / 2:
                # The socket was readable but held no response: the server closed the connection.
                raise ConnectionError("the server closed the IDLE connection")
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                request_sync(self.service.db, self.account_id)
                self.on_new_mail(self.account_id)
            if self._claim() is False:
                raise _LeaseLost()
        if not self.stopping.is_set():
            client.idle_done()
