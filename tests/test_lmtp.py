"""The LMTP listener over a real socket: one reply per recipient, as Postfix's lmtp client expects."""

from __future__ import annotations

import smtplib

import pytest

from conftest import make_settings
from logmail.daemon.runner import Daemon
from logmail.errors import StorageUnavailableError
from logmail.smtp import replies
from logmail.smtp.admission import POLICY_TROUBLE
from platform_helpers import add_org, add_tier, platform_settings, rcpt_reply, stored, wait_stored

MESSAGE = b"From: app@example.net\r\nTo: team@acme.test\r\nSubject: lmtp\r\n\r\n" + b"body line\r\n" * 40


@pytest.fixture
def platform(tmp_path):
    d = Daemon(platform_settings(tmp_path / "data")).start_in_thread()
    yield d
    d.stop()


def lmtp(port: int) -> smtplib.LMTP:
    client = smtplib.LMTP("127.0.0.1", port, timeout=30)
    client.ehlo()  # LHLO
    return client


def deliver(client: smtplib.LMTP, sender: str, recipients: list[str], message: bytes = MESSAGE):
    """MAIL, RCPTs, DATA: the RCPT replies, and the DATA replies (one per accepted RCPT, in order)."""
    assert client.mail(sender)[0] == 250
    rcpt = [rcpt_reply(client, r) for r in recipients]
    accepted = sum(1 for code, _ in rcpt if code == 250)
    if not accepted:
        client.rset()
        return rcpt, []
    # smtplib reads only the first reply after DATA; the others follow on the same connection.
    code, text = client.data(message)
    data = [(code, text.decode())] + [(c, t.decode()) for c, t in (client.getreply() for _ in range(accepted - 1))]
    return rcpt, data


def test_one_reply_per_recipient_and_one_copy_per_organisation(platform):
    s = platform.services
    acme = add_org(s, "dev@acme.test", "ops@acme.test")
    globex = add_org(s, "*@globex.test")
    with lmtp(platform.lmtp_port) as client:
        rcpt, data = deliver(client, "app@example.net",
                             ["dev@acme.test", "unknown@acme.test", "anyone@globex.test", "ops@acme.test"])
        assert [code for code, _ in rcpt] == [250, 550, 250, 250]
        assert rcpt[1][1].startswith("5.1.1 <unknown@acme.test>")
        assert len(data) == 3 and all(code == 250 for code, _ in data)
        assert data[0][1].startswith(replies.OK_ACCEPTED[4:])
        # The connection stays usable for the next transaction (Postfix caches LMTP connections).
        rcpt, data = deliver(client, "app@example.net", ["dev@acme.test"])
        assert [c for c, _ in data] == [250]
    assert [m.envelope_to for m in wait_stored(s, 2, acme)] == [["dev@acme.test", "ops@acme.test"], ["dev@acme.test"]]
    (copy,) = wait_stored(s, 1, globex)
    assert copy.envelope_to == ["anyone@globex.test"] and copy.source == "lmtp"
    assert len(stored(s)) == 3


def test_a_tier_size_limit_refuses_only_its_own_recipients(platform):
    s = platform.services
    small = add_org(s, "small@acme.test", tier=add_tier(s, max_message_size=200))
    big = add_org(s, "big@globex.test")
    with lmtp(platform.lmtp_port) as client:
        rcpt, data = deliver(client, "app@example.net", ["small@acme.test", "big@globex.test"])
    assert [c for c, _ in rcpt] == [250, 250]
    assert [c for c, _ in data] == [552, 250]
    assert data[0][1].startswith("5.3.4")
    (copy,) = wait_stored(s, 1, big)
    assert copy.envelope_to == ["big@globex.test"]
    assert stored(s, small) == []


def test_a_declared_size_over_the_tier_is_refused_at_rcpt(platform):
    s = platform.services
    add_org(s, "small@acme.test", tier=add_tier(s, max_message_size=200))
    with lmtp(platform.lmtp_port) as client:
        client.mail("app@example.net", ["SIZE=5000"])
        assert rcpt_reply(client, "small@acme.test")[0] == 552


def test_storage_failure_answers_451_for_every_accepted_recipient(platform, monkeypatch):
    s = platform.services
    add_org(s, "a@acme.test", "b@acme.test")
    add_org(s, "small@globex.test", tier=add_tier(s, max_message_size=200))

    def broken(items):
        raise StorageUnavailableError("disk on fire")

    monkeypatch.setattr(s.content, "put_many", broken)
    with lmtp(platform.lmtp_port) as client:
        _, data = deliver(client, "app@example.net", ["a@acme.test", "small@globex.test", "b@acme.test"])
        assert data == [(451, replies.TEMPORARY_FAILURE[4:]), (552, data[1][1]), (451, replies.TEMPORARY_FAILURE[4:])]
        monkeypatch.undo()
        _, data = deliver(client, "app@example.net", ["a@acme.test", "b@acme.test"])
        assert [c for c, _ in data] == [250, 250]
    (copy,) = wait_stored(s, 1)
    assert copy.envelope_to == ["a@acme.test", "b@acme.test"]


def test_policy_trouble_at_rcpt_is_451(platform, monkeypatch):
    add_org(platform.services, "a@acme.test")

    def down():
        raise StorageUnavailableError("the database is unavailable")

    monkeypatch.setattr(platform.services.db, "connect", down)
    with lmtp(platform.lmtp_port) as client:
        client.mail("app@example.net")
        assert rcpt_reply(client, "a@acme.test") == (451, POLICY_TROUBLE[4:])
        monkeypatch.undo()
        assert rcpt_reply(client, "a@acme.test")[0] == 250


def test_lmtp_does_not_count_the_rate_again(platform):
    s = platform.services
    org = add_org(s, "busy@acme.test", tier=add_tier(s, emails_per_minute=1))
    with lmtp(platform.lmtp_port) as client:
        for _ in range(3):  # Postfix's policy service counted these already
            _, data = deliver(client, "app@example.net", ["busy@acme.test"])
            assert [c for c, _ in data] == [250]
    wait_stored(s, 3, org)


def test_local_mode_catches_everything_with_a_reply_per_recipient(tmp_path):
    d = Daemon(make_settings(tmp_path / "data", lmtp={"enabled": True, "port": 0})).start_in_thread()
    try:
        with lmtp(d.lmtp_port) as client:
            rcpt, data = deliver(client, "", ["x@anywhere.test", "y@elsewhere.test"])
        assert [c for c, _ in rcpt] == [250, 250] and [c for c, _ in data] == [250, 250]
        (copy,) = wait_stored(d.services, 1)
        assert copy.envelope_to == ["x@anywhere.test", "y@elsewhere.test"] and copy.source == "lmtp"
    finally:
        d.stop()


def test_too_much_data_is_refused_once_per_recipient(tmp_path):
    d = Daemon(make_settings(tmp_path / "data", lmtp={"enabled": True, "port": 0},
                             smtp={"max_message_size": 1000})).start_in_thread()
    try:
        with lmtp(d.lmtp_port) as client:
            _, data = deliver(client, "a@example.net", ["x@a.test", "y@a.test", "z@a.test"], MESSAGE * 10)
            assert [c for c, _ in data] == [552, 552, 552]
            # Still in step: the next transaction gets its own replies.
            _, data = deliver(client, "a@example.net", ["x@a.test"])
            assert [c for c, _ in data] == [250]
    finally:
        d.stop()


def test_helo_and_ehlo_are_not_lmtp(platform):
    client = smtplib.LMTP("127.0.0.1", platform.lmtp_port, timeout=30)
    try:
        assert client.docmd("EHLO", "x")[0] == 500
        assert client.docmd("HELO", "x")[0] == 500
        assert client.docmd("LHLO", "x")[0] == 250
    finally:
        client.close()
