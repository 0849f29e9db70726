"""The SMTP listener in platform mode: the admission policy at RCPT and after DATA."""

from __future__ import annotations

import smtplib

import pytest

from logmail.daemon.runner import Daemon
from logmail.errors import StorageUnavailableError
from logmail.smtp.admission import POLICY_TROUBLE
from platform_helpers import add_org, add_tier, platform_settings, rcpt_reply, stored, suspend, wait_stored

MESSAGE = b"From: app@example.net\r\nTo: team@acme.test\r\nSubject: policy\r\n\r\n" + b"body line\r\n" * 40


@pytest.fixture
def platform(tmp_path):
    d = Daemon(platform_settings(tmp_path / "data")).start_in_thread()
    yield d
    d.stop()


def smtp(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo()
    return client


def test_each_refusal_at_rcpt(platform):
    s = platform.services
    add_org(s, "ok@acme.test")
    suspend(s, add_org(s, "held@acme.test"))
    add_org(s, "month@acme.test", tier=add_tier(s, emails_per_month=0))
    add_org(s, "full@acme.test", tier=add_tier(s, storage_bytes=0))
    add_org(s, "small@acme.test", tier=add_tier(s, max_message_size=1000))
    add_org(s, "busy@acme.test", tier=add_tier(s, emails_per_minute=2))
    with smtp(platform.smtp_port) as client:
        client.mail("app@example.net")

        def status(address):
            code, text = rcpt_reply(client, address)
            return f"{code} {text[:5]}"

        assert status("ok@acme.test") == "250 2.1.5"
        assert status("missing@acme.test") == "550 5.1.1"
        assert status("held@acme.test") == "550 5.7.1"
        assert status("month@acme.test") == "552 5.2.2"
        assert status("full@acme.test") == "552 5.2.2"
        assert status("small@acme.test") == "250 2.1.5"  # no SIZE declared: judged after DATA
        assert [status("busy@acme.test") for _ in range(3)] == ["250 2.1.5", "250 2.1.5", "451 4.7.1"]
        client.rset()
        client.mail("app@example.net", ["SIZE=1001"])
        assert status("small@acme.test") == "552 5.3.4"
        assert status("ok@acme.test") == "250 2.1.5"


def test_mail_for_two_organisations_is_stored_once_for_each_with_its_own_recipients(platform):
    s = platform.services
    acme = add_org(s, "dev@acme.test", "ops@acme.test")
    globex = add_org(s, "*@globex.test")
    with smtp(platform.smtp_port) as client:
        refused = client.sendmail("app@example.net", ["dev@acme.test", "who@globex.test", "ops@acme.test",
                                                      "nobody@initech.test"], MESSAGE)
    assert list(refused) == ["nobody@initech.test"] and refused["nobody@initech.test"][0] == 550
    (a,) = wait_stored(s, 1, acme)
    (g,) = wait_stored(s, 1, globex)
    assert a.envelope_to == ["dev@acme.test", "ops@acme.test"]
    assert g.envelope_to == ["who@globex.test"]
    assert a.ingest_id == g.ingest_id and a.raw_key == g.raw_key  # one accepted message, two copies
    assert len(stored(s)) == 2


def test_a_message_over_one_organisations_size_is_refused_whole(platform):
    s = platform.services
    small = add_org(s, "small@acme.test", tier=add_tier(s, max_message_size=200))
    big = add_org(s, "big@globex.test")
    with smtp(platform.smtp_port) as client:
        client.mail("app@example.net")
        assert rcpt_reply(client, "small@acme.test")[0] == 250
        assert rcpt_reply(client, "big@globex.test")[0] == 250
        code, text = client.data(MESSAGE)
        assert (code, text.decode()[:5]) == (552, "5.3.4")
        # Small enough for both: accepted for both.
        client.mail("app@example.net")
        client.rcpt("small@acme.test")
        client.rcpt("big@globex.test")
        assert client.data(b"Subject: tiny\r\n\r\nx\r\n")[0] == 250
    assert len(wait_stored(s, 1, small)) == 1 and len(wait_stored(s, 1, big)) == 1


def test_policy_trouble_is_451_at_rcpt_never_a_crash(platform, monkeypatch):
    s = platform.services
    add_org(s, "dev@acme.test")

    def down():
        raise StorageUnavailableError("the database is unavailable")

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    with smtp(platform.smtp_port) as client:
        client.mail("app@example.net")
        monkeypatch.setattr(s.db, "connect", down)
        assert rcpt_reply(client, "dev@acme.test") == (451, POLICY_TROUBLE[4:])
        monkeypatch.undo()
        monkeypatch.setattr(s.policy, "check_recipient", bug)
        assert rcpt_reply(client, "dev@acme.test") == (451, POLICY_TROUBLE[4:])
        monkeypatch.undo()
        assert rcpt_reply(client, "dev@acme.test")[0] == 250
        assert client.data(MESSAGE)[0] == 250
    wait_stored(s, 1)


def test_local_mode_still_catches_every_address_without_asking(daemon, monkeypatch):
    def bug(*args, **kwargs):
        raise AssertionError("local mode must not ask the policy")

    monkeypatch.setattr(daemon.services.policy, "check_recipient", bug)
    monkeypatch.setattr(daemon.services.policy, "check_organization", bug)
    with smtp(daemon.smtp_port) as client:
        assert client.sendmail("a@example.net", ["anyone@anywhere.test", "x@y.test"], MESSAGE) == {}
    (copy,) = wait_stored(daemon.services, 1)
    assert copy.envelope_to == ["anyone@anywhere.test", "x@y.test"]
    assert copy.organization_id == daemon.services.boot.organization_id
