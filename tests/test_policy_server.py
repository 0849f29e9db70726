"""The Postfix policy delegation service over a real socket, against a platform-mode daemon."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from conftest import make_settings
from logmail.daemon.runner import Daemon, bind
from logmail.errors import StorageUnavailableError
from logmail.smtp.policy_server import PolicyServer
from platform_helpers import add_org, add_tier, platform_settings, suspend

# What Postfix 3.7 sends at RCPT (SMTPD_POLICY_README), recipient and size filled in per request.
POSTFIX_REQUEST = {
    "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
    "helo_name": "client.example.net", "queue_id": "", "sender": "app@example.net", "recipient": "",
    "recipient_count": "0", "client_address": "192.0.2.10", "client_name": "client.example.net",
    "reverse_client_name": "client.example.net", "instance": "123.456.7", "sasl_method": "",
    "sasl_username": "", "sasl_sender": "", "size": "0", "ccert_subject": "", "ccert_issuer": "",
    "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "", "encryption_protocol": "",
    "encryption_cipher": "", "encryption_keysize": "0", "etrn_domain": "", "stress": "",
    "server_address": "127.0.0.1", "server_port": "25", "policy_context": "",
    "compatibility_level": "3.6", "mail_version": "3.7.11",
}


def request(**attrs: str) -> bytes:
    return b"".join(f"{k}={v}\n".encode() for k, v in {**POSTFIX_REQUEST, **attrs}.items()) + b"\n"


class PolicyClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ask(self, **attrs: str) -> str:
        """One request (Postfix's attributes, these changed); the action of the one reply."""
        self.send(request(**attrs))
        return self.reply()

    def reply(self) -> str:
        line = self.file.readline()
        assert line.startswith(b"action=") and line.endswith(b"\n"), line
        assert self.file.readline() == b"\n"  # exactly one action line, then the empty line
        return line[len("action="):-1].decode()

    def closed_without_reply(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def platform(tmp_path):
    d = Daemon(platform_settings(tmp_path / "data")).start_in_thread()
    yield d
    d.stop()


@pytest.fixture
def client(platform):
    c = PolicyClient(platform.policy_port)
    yield c
    c.close()


def test_several_requests_on_one_connection_with_unknown_attributes_ignored(platform, client):
    add_org(platform.services, "dev@acme.test", "*@catch.test")
    assert client.ask(recipient="dev@acme.test") == "DUNNO"
    assert client.ask(recipient="nobody@acme.test") == (
        "550 5.1.1 <nobody@acme.test>: Recipient address rejected: no such address here")
    assert client.ask(recipient="Anything@Catch.test", attribute_from_postfix_4="x=y=z") == "DUNNO"
    assert client.ask(recipient="dev+build@acme.test") == "DUNNO"
    # A stray empty line between requests asks nothing and gets no reply.
    client.send(b"\n")
    assert client.ask(recipient="DEV@ACME.TEST") == "DUNNO"


def test_every_refusal_code(platform, client):
    s = platform.services
    add_org(s, "ok@acme.test")
    suspended = add_org(s, "held@acme.test")
    suspend(s, suspended)
    add_org(s, "month@acme.test", tier=add_tier(s, emails_per_month=0))
    add_org(s, "full@acme.test", tier=add_tier(s, storage_bytes=0))
    add_org(s, "small@acme.test", tier=add_tier(s, max_message_size=1000))
    add_org(s, "busy@acme.test", tier=add_tier(s, emails_per_minute=2))

    def code(recipient, **attrs):
        return client.ask(recipient=recipient, **attrs)[:9]

    assert code("ok@acme.test") == "DUNNO"
    assert code("missing@acme.test") == "550 5.1.1"
    assert code("held@acme.test") == "550 5.7.1"
    assert code("month@acme.test") == "552 5.2.2"
    assert code("full@acme.test") == "552 5.2.2"
    assert code("small@acme.test", size="1000") == "DUNNO"
    assert code("small@acme.test", size="1001") == "552 5.3.4"
    assert code("small@acme.test", size="0") == "DUNNO"  # no SIZE declared: checked after DATA
    assert [code("busy@acme.test") for _ in range(3)] == ["DUNNO", "DUNNO", "451 4.7.1"]


def test_other_states_are_dunno_and_end_of_message_checks_the_size(platform, client):
    add_org(platform.services, "small@acme.test", tier=add_tier(platform.services, max_message_size=1000))
    assert client.ask(protocol_state="CONNECT", recipient="") == "DUNNO"
    assert client.ask(protocol_state="DATA", recipient="missing@acme.test") == "DUNNO"
    assert client.ask(recipient="") == "DUNNO"
    assert client.ask(request="some_future_request", recipient="missing@acme.test") == "DUNNO"
    # END-OF-MESSAGE names a recipient only when there is one; only the size is judged there.
    assert client.ask(protocol_state="END-OF-MESSAGE", recipient="small@acme.test", size="5000")[:9] == "552 5.3.4"
    assert client.ask(protocol_state="END-OF-MESSAGE", recipient="small@acme.test", size="500") == "DUNNO"
    assert client.ask(protocol_state="END-OF-MESSAGE", recipient="", size="5000") == "DUNNO"
    assert client.ask(protocol_state="END-OF-MESSAGE", recipient="missing@acme.test", size="5000") == "DUNNO"


def test_storage_trouble_gets_no_reply_and_a_closed_connection(platform, monkeypatch, caplog):
    s = platform.services
    add_org(s, "dev@acme.test")

    def down():
        raise StorageUnavailableError("the database is unavailable")

    monkeypatch.setattr(s.db, "connect", down)
    caplog.set_level(logging.WARNING, logger="logmail.policy")
    for _ in range(2):
        c = PolicyClient(platform.policy_port)
        c.send(request(recipient="dev@acme.test"))
        assert c.closed_without_reply()
        c.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "logmail.policy"]
    assert len(warnings) == 1  # one per outage, not one per request
    assert "cannot check recipients" in warnings[0].getMessage()
    monkeypatch.undo()
    c = PolicyClient(platform.policy_port)
    assert c.ask(recipient="dev@acme.test") == "DUNNO"
    c.close()


def test_an_unexpected_error_is_no_reply_either(platform, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(platform.services.policy, "check_recipient", bug)
    c = PolicyClient(platform.policy_port)
    c.send(b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=x@acme.test\n\n")
    assert c.closed_without_reply()
    c.close()


@pytest.mark.parametrize("garbage", [
    b"request=smtpd_access_policy\nthis line has no equals sign\n\n",
    b"=value without a name\n\n",
    b"recipient=" + b"a" * 9000 + b"@acme.test\n\n",
    b"".join(f"attr{n}=v\n".encode() for n in range(101)) + b"\n",
])
def test_input_that_is_not_the_protocol_closes_the_connection(platform, client, garbage, caplog):
    add_org(platform.services, "dev@acme.test")
    assert client.ask(recipient="dev@acme.test") == "DUNNO"
    caplog.set_level(logging.WARNING, logger="logmail.policy")
    client.send(garbage)
    assert client.closed_without_reply()
    assert any("closing the connection" in r.getMessage() for r in caplog.records)
    # The service itself is fine.
    other = PolicyClient(platform.policy_port)
    assert other.ask(recipient="dev@acme.test") == "DUNNO"
    other.close()


def test_local_mode_answers_dunno_for_everyone(tmp_path):
    d = Daemon(make_settings(tmp_path / "data", policy={"enabled": True, "port": 0})).start_in_thread()
    try:
        c = PolicyClient(d.policy_port)
        assert c.ask(recipient="anyone@anywhere.test") == "DUNNO"
        assert c.ask(recipient="anyone@anywhere.test", size="999999999999") == "DUNNO"
        c.close()
    finally:
        d.stop()


def test_an_idle_connection_is_closed_and_stop_hangs_up_on_open_ones(platform):
    async def scenario():
        server = PolicyServer(platform.services.policy, idle_timeout=0.2)
        sock = bind("127.0.0.1", 0)
        await server.start(sock)
        port = sock.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # idle past the timeout: closed
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"request=smtpd_access_policy\nprotocol_state=CONNECT\n\n")
        assert await reader.readuntil(b"\n\n") == b"action=DUNNO\n\n"
        await asyncio.wait_for(server.close(), 5)  # does not wait for the client to leave
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    asyncio.run(scenario())


def test_stopping_the_daemon_closes_policy_connections(tmp_path):
    d = Daemon(platform_settings(tmp_path / "data")).start_in_thread()
    c = PolicyClient(d.policy_port)
    assert c.ask(recipient="", protocol_state="CONNECT") == "DUNNO"
    d.stop()
    assert c.closed_without_reply()
    c.close()
