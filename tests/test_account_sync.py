"""Mailbox sync without a mail server: what the account row says when the server is away, silent
or the password unusable; which accounts are due; leases; the stale ``is_syncing`` of a dead daemon.

The syncs themselves, against a real Dovecot, are in test_imap_sync.py and test_pop3_sync.py.
"""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from conftest import make_settings
from logmail.imap.errors import MailboxUnreachableError
from logmail.imap.probe import check_login
from logmail.imap.sync_service import backoff_seconds, lease_name, request_sync
from logmail.services.container import build_services
from logmail.store import leases
from mailbox_helpers import account, add_account, change, sync_service


@pytest.fixture
def services(tmp_path):
    s = build_services(make_settings(tmp_path / "data", accounts={"timeout": 0.5, "min_sync_interval": 1}))
    yield s
    s.close()


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server():
    """Accepts connections and never says a word (a hung mail server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_backoff_doubles_from_30_seconds_to_an_hour_with_jitter():
    rng = random.Random(7)
    for failures, base in [(1, 30), (2, 60), (3, 120), (5, 480), (8, 3600), (30, 3600)]:
        values = [backoff_seconds(failures, rng) for _ in range(200)]
        assert base * 0.8 <= min(values) and max(values) <= base * 1.2
        assert max(values) - min(values) > base * 0.2  # jittered, not in step


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_an_unreachable_server_backs_off_and_says_why(services, closed_port, protocol):
    account_id = add_account(services, username="someone", password="hunter2-secret", port=closed_port,
                             protocol=protocol, sync_interval=60)
    sync = sync_service(services)
    delays = []
    for failures in (1, 2, 3):
        before = now_ms()
        result = sync.sync(account_id)
        assert result["status"] == "error"
        row = account(services, account_id)
        assert row.consecutive_failures == failures
        assert "refused the connection" in row.last_error and row.last_error_at >= before
        assert not row.auth_failed and not row.is_syncing and row.last_sync_at is None
        delays.append((row.next_sync_at - before) / 1000)
    assert 24 <= delays[0] <= 37 and 48 <= delays[1] <= 73 and 96 <= delays[2] <= 145
    assert sync.due(10) == []  # backing off: not due


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_server_that_never_answers_times_out(services, silent_server, protocol):
    account_id = add_account(services, username="someone", password="pw", port=silent_server, protocol=protocol)
    started = time.monotonic()
    result = sync_service(services).sync(account_id)
    assert time.monotonic() - started < 5
    assert result["status"] == "error"
    assert "did not answer within 0.5 s" in account(services, account_id).last_error


def test_the_probe_reports_unreachable_and_timeouts(closed_port, silent_server):
    with pytest.raises(MailboxUnreachableError, match="refused"):
        check_login("imap", "127.0.0.1", closed_port, "none", "u", "p", 0.5)
    with pytest.raises(MailboxUnreachableError, match="did not answer"):
        check_login("pop3", "127.0.0.1", silent_server, "tls", "u", "p", 0.5)


def test_a_password_that_no_longer_decrypts_stops_retries(services, closed_port):
    account_id = add_account(services, username="someone", password="pw", port=closed_port,
                             password_encrypted="v1:000000000000:AAAA")
    result = sync_service(services).sync(account_id)
    assert result["status"] == "auth_failed"
    row = account(services, account_id)
    assert row.auth_failed and "enter the password again" in row.last_error and not row.is_syncing


def test_which_accounts_are_due(services, closed_port):
    sync = sync_service(services)
    due_now = add_account(services, username="a", password="p", port=closed_port)
    later = add_account(services, username="b", password="p", port=closed_port, next_sync_at=now_ms() + 60_000)
    add_account(services, username="c", password="p", port=closed_port, auth_failed=True)
    add_account(services, username="d", password="p", port=closed_port, is_enabled=False)
    add_account(services, username="e", password="p", port=closed_port, is_sync_enabled=False)
    assert sync.due(10) == [due_now]
    assert request_sync(services.db, later)
    assert sorted(sync.due(10)) == sorted([due_now, later])
    assert not request_sync(services.db, 999_999)


def test_an_account_is_synced_by_one_holder_of_its_lease_at_a_time(services, closed_port):
    account_id = add_account(services, username="a", password="p", port=closed_port)
    first, second = sync_service(services, owner="daemon-1"), sync_service(services, owner="daemon-2")
    assert first.claim(account_id)
    assert second.sync(account_id) == {"accountId": account_id, "status": "busy"}
    assert account(services, account_id).consecutive_failures == 0  # the second never touched it
    first.release(account_id)
    assert second.sync(account_id)["status"] == "error"


def test_a_due_check_after_the_lease_stops_a_second_sync_in_a_row(services, closed_port):
    """Two daemons saw the account due; the first synced it and let go: the second must not repeat it."""
    account_id = add_account(services, username="a", password="p", port=closed_port)
    sync = sync_service(services)
    assert sync.sync(account_id, force=False)["status"] == "error"
    assert sync.claim(account_id)
    assert sync.sync_claimed(account_id, force=False)["status"] == "not_due"


def test_a_stale_is_syncing_of_a_dead_daemon_is_cleared(services, closed_port):
    sync = sync_service(services, lease_seconds=1)
    dead = add_account(services, username="a", password="p", port=closed_port, is_syncing=True,
                       sync_started_at=now_ms() - 5_000)
    alive = add_account(services, username="b", password="p", port=closed_port, is_syncing=True,
                        sync_started_at=now_ms() - 5_000)
    assert leases.acquire(services.db, lease_name(alive), "another-daemon", 60_000, now_ms())
    assert sync.clear_stale() == 1
    assert not account(services, dead).is_syncing
    assert account(services, alive).is_syncing


def test_a_disabled_or_failed_account_is_not_synced_even_when_asked(services, closed_port):
    account_id = add_account(services, username="a", password="p", port=closed_port, auth_failed=True)
    sync = sync_service(services)
    assert sync.sync(account_id) == {"accountId": account_id, "status": "skipped", "reason": "authentication failed"}
    change(services, account_id, auth_failed=False, is_enabled=False)
    assert sync.sync(account_id)["status"] == "skipped"
    assert sync.sync(123456)["status"] == "skipped"


def test_an_edit_during_a_sync_wins_over_the_verdict_on_the_old_settings(services, silent_server):
    account_id = add_account(services, username="someone", password="old", port=silent_server)
    sync = sync_service(services)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(sync.sync(account_id)))
    thread.start()
    time.sleep(0.2)  # the sync is waiting for the silent server's greeting
    assert account(services, account_id).is_syncing
    change(services, account_id, next_sync_at=0)  # "sync now", or a new password
    thread.join()
    assert outcome["status"] == "error"
    row = account(services, account_id)
    assert not row.is_syncing and row.sync_stats["lastRunMs"] >= 400
    assert row.next_sync_at == 0 and row.consecutive_failures == 0 and row.last_error is None
