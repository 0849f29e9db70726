"""Pulling mail from a real Dovecot over POP3: UIDL identity, nothing deleted, no duplicates."""

from __future__ import annotations

import pytest

from conftest import make_settings
from dovecot_peer import DovecotPeer, dovecot_available, message
from logmail.daemon.runner import Daemon
from logmail.imap.errors import MailboxAuthError, MailboxUnreachableError
from logmail.imap.probe import check_login
from mailbox_helpers import account, add_account, count_pulled, forget_progress, sync_service, wait_pulled

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def dovecot():
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (Debian packages dovecot-imapd dovecot-pop3d)")
    peer = DovecotPeer().start()
    yield peer
    peer.close()


@pytest.fixture
def mailbox(dovecot):
    return dovecot.new_user()


@pytest.fixture
def services(tmp_path):
    d = Daemon(make_settings(tmp_path / "data", accounts={"timeout": 5, "min_sync_interval": 1}),
               roles=("worker",)).start_in_thread()
    yield d.services
    d.stop()


def pop3_account(services, dovecot, mailbox, **fields) -> int:
    user, password = mailbox
    return add_account(services, username=user, password=password, port=dovecot.pop3_port, protocol="pop3",
                       **fields)


def files_in(dovecot, user) -> int:
    root = dovecot.maildir(user)
    return len(list((root / "new").iterdir())) + len(list((root / "cur").iterdir()))


def test_pop3_imports_by_uidl_and_deletes_nothing(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(250)])  # more than one chunk of 100
    account_id = pop3_account(services, dovecot, mailbox)
    sync = sync_service(services)

    result = sync.sync(account_id)
    assert result["status"] == "ok" and result["imported"] == 250
    stored = wait_pulled(services, account_id, 250)
    assert len(stored) == 250 and len({m.message_id for m in stored}) == 250
    assert {(m.source, m.folder) for m in stored} == {("pop3", "INBOX")}
    assert dovecot.pop3_count(user) == 250 and files_in(dovecot, user) == 250  # nothing deleted
    row = account(services, account_id)
    assert row.last_error is None and row.sync_stats["folders"]["INBOX"]["messages"] == 250

    again = sync.sync(account_id)
    assert again["imported"] == 0 and again["seen"] == 250

    dovecot.deliver(user, [message(n) for n in range(250, 260)])
    assert sync.sync(account_id)["imported"] == 10
    assert len(wait_pulled(services, account_id, 260)) == 260
    assert dovecot.pop3_count(user) == 260


def test_pop3_never_stores_a_message_twice_even_without_its_seen_set(dovecot, mailbox, services):
    user, _ = mailbox
    dovecot.deliver(user, [message(n) for n in range(20)])
    account_id = pop3_account(services, dovecot, mailbox)
    sync = sync_service(services)
    assert sync.sync(account_id)["imported"] == 20
    wait_pulled(services, account_id, 20)
    forget_progress(services, account_id, seen=True)  # as if the daemon died before recording it
    assert sync.sync(account_id)["imported"] == 0  # the same UIDLs make the same ingest ids
    assert count_pulled(services, account_id) == 20


def test_pop3_wrong_password(dovecot, mailbox, services):
    user, _ = mailbox
    account_id = add_account(services, username=user, password="not-the-Password-42", port=dovecot.pop3_port,
                             protocol="pop3")
    result = sync_service(services).sync(account_id)
    assert result["status"] == "auth_failed"
    row = account(services, account_id)
    assert row.auth_failed and row.last_error.startswith("authentication failed:")
    assert "not-the-Password-42" not in row.last_error
    with pytest.raises(MailboxAuthError):
        check_login("pop3", "127.0.0.1", dovecot.pop3_port, "none", user, "not-the-Password-42", 5)


@pytest.mark.parametrize("encryption", ["tls", "starttls"])
def test_pop3_over_tls(dovecot, mailbox, services, monkeypatch, encryption):
    user, password = mailbox
    dovecot.deliver(user, [message(n) for n in range(3)])
    port = dovecot.pop3s_port if encryption == "tls" else dovecot.pop3_port
    with pytest.raises(MailboxUnreachableError, match="not trusted"):
        check_login("pop3", "localhost", port, encryption, user, password, 5)
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    assert check_login("pop3", "localhost", port, encryption, user, password, 5)["messages"] == 3
    account_id = add_account(services, username=user, password=password, hostname="localhost", port=port,
                             protocol="pop3", encryption=encryption)
    assert sync_service(services).sync(account_id)["imported"] == 3
    assert len(wait_pulled(services, account_id, 3)) == 3
