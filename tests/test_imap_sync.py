"""Pulling mail from a real Dovecot over IMAP: first and incremental syncs, re-syncs, a daemon
killed mid-sync, UIDVALIDITY changes, wrong passwords, an outage, TLS, quotas, leases and IDLE."""

from __future__ import annotations

import dataclasses
import imaplib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import make_settings, stack_overrides, write_config
from dovecot_peer import DovecotPeer, dovecot_available, message
from logmail.daemon.jobs import AccountSyncDispatcher
from logmail.daemon.runner import Daemon
from logmail.imap.errors import MailboxAuthError, MailboxUnreachableError
from logmail.imap.probe import check_login
from logmail.services.container import build_services
from mailbox_helpers import (account, add_account, change, count_pulled, folder_state, forget_progress, sync_service,
                             wait_pulled)
from platform_helpers import add_org, add_tier, platform_settings, set_limits

pytestmark = pytest.mark.dovecot

ACCOUNTS = {"timeout": 5, "min_sync_interval": 1, "dispatch_interval": 0.2}


@pytest.fixture(scope="module")
def dovecot():
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (Debian packages dovecot-imapd dovecot-pop3d)")
    peer = DovecotPeer().start()
    yield peer
    peer.close()


@pytest.fixture
def mailbox(dovecot):
    """A fresh Dovecot user: (name, password)."""
    return dovecot.new_user()


@pytest.fixture
def logmail(tmp_path):
    """A daemon that stores what syncs accept (API and ingest; no scheduler: tests sync by hand)."""
    d = Daemon(make_settings(tmp_path / "data", accounts=ACCOUNTS), roles=("api", "worker")).start_in_thread()
    yield d
    d.stop()


@pytest.fixture
def services(logmail):
    return logmail.services


def imap_account(services, dovecot, mailbox, **fields) -> int:
    user, password = mailbox
    return add_account(services, username=user, password=password, port=dovecot.imap_port, **fields)


def commands(monkeypatch) -> list[str]:
    """Every IMAP command this process sends from now on, by name."""
    sent: list[str] = []
    original = imaplib.IMAP4._command

    def counting(self, name, *args):
        sent.append(name if name != "UID" else f"UID {args[0]}")
        return original(self, name, *args)

    monkeypatch.setattr(imaplib.IMAP4, "_command", counting)
    return sent


def test_first_sync_imports_a_thousand_messages_once_and_leaves_them_unread(dovecot, mailbox, services, logmail):
    user, _ = mailbox
    dovecot.deliver(user, [message(n, subject=f"invoice {n}" if n % 10 == 0 else None) for n in range(1000)])
    account_id = imap_account(services, dovecot, mailbox)

    result = sync_service(services).sync(account_id)

    assert result["status"] == "ok" and result["imported"] == 1000
    stored = wait_pulled(services, account_id, 1000)
    assert len(stored) == 1000
    assert len({m.message_id for m in stored}) == 1000
    assert {(m.source, m.folder, m.account_id) for m in stored} == {("imap", "INBOX", account_id)}
    assert stored[0].envelope_to == [f"{user}@example.test"]
    row = account(services, account_id)
    assert not row.is_syncing and row.last_error is None and row.consecutive_failures == 0
    assert row.last_sync_at and row.next_sync_at - row.last_sync_at == 300_000
    assert row.sync_stats["imported"] == 1000 and row.sync_stats["totalImported"] == 1000
    assert row.sync_stats["folders"]["INBOX"]["lastUid"] == 1000
    assert folder_state(services, account_id).last_uid == 1000
    # Searchable like any captured mail, through the public API.
    token = (Path(logmail.settings.data_dir) / "owner.token").read_text().strip()
    found = httpx.get(f"http://127.0.0.1:{logmail.api_port}/messages", params={"q": "invoice", "limit": 1000},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert found["pagination"]["total"] == 100
    assert {m["source"] for m in found["messages"]} == {"imap"}
    # BODY.PEEK: the user's mail is still unread on the server.
    assert dovecot.status(user)["UNSEEN"] == 1000
    assert not any(b"\\Seen" in flags for flags in dovecot.flags(user).values())


def test_an_unchanged_mailbox_costs_one_status_and_new_mail_is_fetched_incrementally(dovecot, mailbox, services,
                                                                                    monkeypatch):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(5)])
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    assert sync.sync(account_id)["imported"] == 5

    sent = commands(monkeypatch)
    again = sync.sync(account_id)
    assert again["status"] == "ok" and again["imported"] == 0
    assert sent == ["LOGIN", "STATUS", "LOGOUT"]

    dovecot.append(user, [message(n) for n in range(5, 8)])
    sent.clear()
    assert sync.sync(account_id)["imported"] == 3
    assert sent[:4] == ["LOGIN", "STATUS", "EXAMINE", "UID FETCH"]
    stored = wait_pulled(services, account_id, 8)
    assert sorted(m.subject for m in stored) == sorted(f"pulled message {n}" for n in range(8))
    assert folder_state(services, account_id).last_uid == 8
    # A message came and went: UIDNEXT moved on, nothing is new, and "UID FETCH 10:*" hands back
    # message 8 (the highest there is), which must not be imported again.
    client = dovecot.client(user)
    client.append("INBOX", message(99))
    client.select_folder("INBOX")
    client.delete_messages(client.search("ALL")[-1:])
    client.expunge()
    client.logout()
    sent.clear()
    assert sync.sync(account_id)["imported"] == 0
    assert "UID FETCH" in sent
    time.sleep(0.3)
    assert count_pulled(services, account_id) == 8
    assert sync.sync(account_id)["imported"] == 0
    assert sent[-3:] == ["LOGIN", "STATUS", "LOGOUT"]  # the new UIDNEXT was saved


def test_an_empty_mailbox(dovecot, mailbox, services, monkeypatch):
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    sent = commands(monkeypatch)
    assert sync.sync(account_id)["imported"] == 0
    assert "UID FETCH" not in sent  # "1:*" of an empty folder is an error on some servers
    state = folder_state(services, account_id)
    assert (state.last_uid, state.uidnext) == (0, 1)
    sent.clear()
    assert sync.sync(account_id)["status"] == "ok"
    assert sent == ["LOGIN", "STATUS", "LOGOUT"]


def test_a_resync_from_scratch_stores_nothing_twice(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(30)])
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    assert sync.sync(account_id)["imported"] == 30
    wait_pulled(services, account_id, 30)

    forget_progress(services, account_id)  # the high-water mark is gone: the seen set recognises them
    result = sync.sync(account_id)
    assert result["imported"] == 0 and result["seen"] == 30

    forget_progress(services, account_id, seen=True)  # and without the seen set: the ingest ids do
    assert sync.sync(account_id)["imported"] == 0
    time.sleep(0.5)
    assert count_pulled(services, account_id) == 30


def test_a_uidvalidity_change_rematches_by_message_id_and_imports_only_new_mail(dovecot, mailbox, services):
    user, _ = mailbox
    # Some without a Message-ID: those are recognised by their whole header.
    old = [message(n, msgid=None if n % 5 == 0 else "auto") for n in range(40)]
    dovecot.deliver(user, old)
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    assert sync.sync(account_id)["imported"] == 40
    before = folder_state(services, account_id)

    dovecot.reset_uidvalidity(user)
    dovecot.deliver(user, [message(n) for n in range(40, 45)])
    assert dovecot.status(user)["UIDVALIDITY"] != before.uidvalidity
    result = sync.sync(account_id)

    assert result["status"] == "ok"
    assert result["imported"] == 5 and result["seen"] == 40
    stored = wait_pulled(services, account_id, 45)
    assert len(stored) == 45 and len({m.subject for m in stored}) == 45
    after = folder_state(services, account_id)
    assert after.uidvalidity == dovecot.status(user)["UIDVALIDITY"] and after.last_uid == 45
    stats = account(services, account_id).sync_stats["folders"]["INBOX"]
    assert stats["uidvalidityResets"] == 1
    assert sync.sync(account_id)["imported"] == 0
    assert account(services, account_id).sync_stats["folders"]["INBOX"]["uidvalidityResets"] == 0


def test_a_folder_whose_uidvalidity_keeps_changing_is_paused_until_the_account_changes(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(3)])
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    sync.sync(account_id)
    for _ in range(3):
        dovecot.reset_uidvalidity(user)
        assert sync.sync(account_id)["errors"] == []
    dovecot.reset_uidvalidity(user)
    result = sync.sync(account_id)
    assert "paused" in result["errors"][0]
    row = account(services, account_id)
    assert "UIDVALIDITY changed on 4 syncs in a row" in row.last_error and not row.auth_failed
    assert "paused" in sync.sync(account_id)["errors"][0]  # stays paused
    change(services, account_id, account_name="edited")
    assert sync.sync(account_id)["errors"] == []
    assert account(services, account_id).last_error is None
    assert count_pulled(services, account_id) == 3


def test_several_folders_and_a_missing_one(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(4)])
    dovecot.deliver(user, [message(n) for n in range(10, 13)], folder="Archive")
    account_id = imap_account(services, dovecot, mailbox, folders=["INBOX", "Archive", "Nope"])
    result = sync_service(services).sync(account_id)
    assert result["imported"] == 7
    stored = wait_pulled(services, account_id, 7)
    assert sorted(m.folder for m in stored) == ["Archive"] * 3 + ["INBOX"] * 4
    row = account(services, account_id)
    assert "'Nope'" in row.last_error and row.last_sync_at and row.consecutive_failures == 0


def test_a_wrong_password_is_recorded_and_not_retried(dovecot, mailbox, services):
    user, _ = mailbox
    wrong = "wrong-Pa55word-do-not-log"
    account_id = add_account(services, username=user, password=wrong, port=dovecot.imap_port)
    sync = sync_service(services)
    result = sync.sync(account_id)
    assert result["status"] == "auth_failed"
    row = account(services, account_id)
    assert row.auth_failed and not row.is_syncing
    assert row.last_error.startswith("authentication failed:") and "AUTHENTICATIONFAILED" in row.last_error
    assert wrong not in row.last_error and wrong not in str(result)
    assert account_id not in sync.due(100)  # the dispatcher leaves it alone
    assert sync.sync(account_id)["status"] == "skipped"
    with pytest.raises(MailboxAuthError):
        check_login("imap", "127.0.0.1", dovecot.imap_port, "none", user, wrong, 5)
    change(services, account_id, auth_failed=False,
           password_encrypted=services.vault.encrypt(row.uuid, mailbox[1]))  # what the API does on PUT
    assert sync.sync(account_id)["status"] == "ok"
    assert account(services, account_id).last_error is None


def test_server_down_backs_off_then_recovers(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(3)])
    account_id = imap_account(services, dovecot, mailbox)
    sync = sync_service(services)
    dovecot.stop()
    try:
        started = int(time.time() * 1000)
        assert sync.sync(account_id)["status"] == "error"
        row = account(services, account_id)
        assert row.consecutive_failures == 1 and "refused" in row.last_error
        assert 24_000 <= row.next_sync_at - started <= 37_000
        assert sync.sync(account_id)["status"] == "error"
        assert account(services, account_id).consecutive_failures == 2
    finally:
        dovecot.start()
    assert sync.sync(account_id)["imported"] == 3
    row = account(services, account_id)
    assert row.consecutive_failures == 0 and row.last_error is None and row.last_sync_at
    assert wait_pulled(services, account_id, 3)


@pytest.mark.parametrize("encryption", ["tls", "starttls"])
def test_tls_verifies_the_certificate(dovecot, mailbox, services, monkeypatch, encryption):
    user, password = mailbox
    dovecot.deliver(user, [message(1)])
    port = dovecot.imaps_port if encryption == "tls" else dovecot.imap_port
    account_id = add_account(services, username=user, password=password, hostname="localhost", port=port,
                             encryption=encryption)
    sync = sync_service(services)
    # Its CA is not one the system trusts: refused, and said so.
    assert sync.sync(account_id)["status"] == "error"
    assert "certificate" in account(services, account_id).last_error
    with pytest.raises(MailboxUnreachableError, match="not trusted"):
        check_login("imap", "localhost", port, encryption, user, password, 5)
    # Trusted through OpenSSL's SSL_CERT_FILE, as an operator with a private CA would do it.
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    assert sync.sync(account_id)["imported"] == 1
    found = check_login("imap", "localhost", port, encryption, user, password, 5)
    assert found["messages"] == 1 and "INBOX" in found["folders"]
    # The name must match too: the certificate is for localhost, not for 127.0.0.1.
    with pytest.raises(MailboxUnreachableError, match="certificate.*mismatch"):
        check_login("imap", "127.0.0.1", port, encryption, user, password, 5)


def test_quota_refusal_in_platform_mode(dovecot, mailbox, tmp_path):
    user, password = mailbox
    dovecot.deliver(user, [message(n) for n in range(8)])
    d = Daemon(platform_settings(tmp_path / "data", accounts=ACCOUNTS, smtp={"enabled": False},
                                 api={"enabled": False}), roles=("worker",)).start_in_thread()
    try:
        services = d.services
        tier = add_tier(services, emails_per_month=5)
        org = add_org(services, "me@acme.example.test", tier=tier)
        account_id = add_account(services, username=user, password=password, port=dovecot.imap_port,
                                 organization_id=org, sync_interval=600)
        sync = sync_service(services)
        started = int(time.time() * 1000)
        result = sync.sync(account_id)
        assert result["status"] == "error" and result["imported"] == 5
        row = account(services, account_id)
        assert "quota" in row.last_error and row.next_sync_at - started >= 600_000
        assert folder_state(services, account_id).last_uid == 5
        stored = wait_pulled(services, account_id, 5)
        assert {m.organization_id for m in stored} == {org}
        assert sync.sync(account_id)["status"] == "error"  # stored now, still over quota
        set_limits(services, tier, emails_per_month=None, max_message_size=1500)
        dovecot.deliver(user, [message(99, body="x" * 5000)])  # bigger than the tier allows
        result = sync.sync(account_id)
        assert result["status"] == "ok" and result["imported"] == 3
        assert account(services, account_id).sync_stats["skippedTooBig"] == 1
        assert len(wait_pulled(services, account_id, 8)) == 8
    finally:
        d.stop()


def test_two_daemons_never_sync_one_account_at_once(dovecot, services):
    accounts = []
    for n in range(6):
        mailbox = dovecot.new_user()
        dovecot.deliver(mailbox[0], [message(i) for i in range(150)])
        accounts.append(imap_account(services, dovecot, mailbox))
    runs: list[tuple[int, float, float, str]] = []
    lock = threading.Lock()
    dispatchers = []
    for owner in ("daemon-a", "daemon-b"):
        service = sync_service(services, owner=owner)
        original = service.sync_claimed

        def recorded(account_id, original=original, owner=owner, **kw):
            start = time.monotonic()
            try:
                return original(account_id, **kw)
            finally:
                with lock:
                    runs.append((account_id, start, time.monotonic(), owner))

        service.sync_claimed = recorded
        settings = dataclasses.replace(services.settings.accounts, max_parallel_syncs=2, dispatch_interval=0.05)
        dispatchers.append(AccountSyncDispatcher(service, settings, idle=False))
    try:
        for d in dispatchers:
            d.start()
        for account_id in accounts:
            wait_pulled(services, account_id, 150)
        time.sleep(0.5)
    finally:
        for d in dispatchers:
            d.stop()
    by_account: dict[int, list] = {}
    for account_id, start, end, owner in runs:
        by_account.setdefault(account_id, []).append((start, end))
    for account_id, spans in by_account.items():
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), \
            f"account {account_id} was synced twice at once: {spans}"
    assert {owner for *_, owner in runs} == {"daemon-a", "daemon-b"}  # they shared the work
    for account_id in accounts:
        assert count_pulled(services, account_id) == 150


def test_idle_brings_new_mail_in_seconds_and_stops_with_the_account(dovecot, mailbox, tmp_path):
    user, password = mailbox
    dovecot.deliver(user, [message(0)])
    d = Daemon(make_settings(tmp_path / "data", accounts=ACCOUNTS), roles=("worker", "scheduler")).start_in_thread()
    try:
        services = d.services
        account_id = add_account(services, username=user, password=password, port=dovecot.imap_port,
                                 use_idle=True, sync_interval=3600)
        wait_pulled(services, account_id, 1)  # the first sync, due at once
        dispatcher = d._account_sync
        deadline = time.monotonic() + 10
        while not (account_id in dispatcher._watchers and dispatcher._watchers[account_id][1].holding):
            assert time.monotonic() < deadline, "no IDLE watcher"
            time.sleep(0.05)
        time.sleep(0.3)
        dovecot.append(user, [message(1)])
        started = time.monotonic()
        wait_pulled(services, account_id, 2, timeout=10)  # polling alone would take an hour
        assert time.monotonic() - started < 5
        change(services, account_id, is_enabled=False)
        watcher = dispatcher._watchers[account_id][1]
        deadline = time.monotonic() + 10
        while watcher.alive or account_id in dispatcher._watchers:
            assert time.monotonic() < deadline, "the IDLE watcher outlived its account"
            time.sleep(0.05)
    finally:
        d.stop()


def test_a_daemon_killed_mid_sync_leaves_nothing_doubled_or_missing(dovecot, mailbox, tmp_path):
    user, password = mailbox
    total = 3000
    dovecot.deliver(user, [message(n, body=f"message {n}\n" + "padding line of text\n" * 150) for n in range(total)])
    stack = stack_overrides()
    settings = make_settings(tmp_path / "data", **stack, accounts=ACCOUNTS)
    services = build_services(settings)
    try:
        account_id = add_account(services, username=user, password=password, port=dovecot.imap_port)
        cfg = write_config(tmp_path / "logmail.toml", {
            "data_dir": str(tmp_path / "data"), "log_level": "warning", "accounts": ACCOUNTS,
            "ingest": {"workers": 0}, "queue": {"lease_seconds": 3, "poll_interval": 0.05},
        }, stack=stack)
        log = tmp_path / "daemon.log"

        def start() -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "logmail", "daemon", "--config", str(cfg),
                                     "--role", "scheduler,worker"], stdout=log.open("ab"),
                                    stderr=subprocess.STDOUT, start_new_session=True)

        proc = start()
        deadline = time.monotonic() + 60
        while (state := folder_state(services, account_id)) is None or state.last_uid < 500:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the daemon did not start syncing"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = folder_state(services, account_id).last_uid
        assert killed_at < total, "the sync finished before the kill: nothing was tested"
        assert account(services, account_id).is_syncing  # as the dead daemon left it

        proc = start()  # a new daemon: it waits for the dead one's lease to run out, then carries on
        try:
            stored = wait_pulled(services, account_id, total, timeout=90)
            assert len(stored) == total and len({m.message_id for m in stored}) == total
            deadline = time.monotonic() + 10
            while account(services, account_id).is_syncing:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            row = account(services, account_id)
            assert row.last_error is None and folder_state(services, account_id).last_uid == total
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert count_pulled(services, account_id) == total
    finally:
        services.close()


def test_the_probe_lists_folders_without_importing(dovecot, mailbox, services):
    user, password = mailbox
    dovecot.deliver(user, [message(n) for n in range(2)])
    dovecot.deliver(user, [message(9)], folder="Archive")
    found = check_login("imap", "127.0.0.1", dovecot.imap_port, "none", user, password, 5)
    assert found == {"protocol": "imap", "encryption": "none", "messages": 2, "folders": ["INBOX", "Archive"],
                     "idle": True}
    assert dovecot.status(user)["UNSEEN"] == 2
