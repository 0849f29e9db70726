"""Real SMTP servers on loopback for the outbound tests (aiosmtpd): one that takes mail and keeps it,
one that answers with a chosen code at a chosen stage, and a port where nothing listens."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from ports import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.data)


@dataclass
class Peer:
    """A scriptable SMTP server. ``refuse`` maps a stage ("RCPT", "DATA") to the reply given there;
    ``hold`` names a stage at which the server stops answering until ``release`` is set."""

    refuse: dict[str, str] = field(default_factory=dict)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address → reply to its RCPT
    delay: float = 0.0
    hold: str | None = None
    password: str | None = None          # AUTH: the one accepted (None: any)
    auth_reply: str | None = None        # AUTH: refuse with this reply instead
    received: list[Received] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def _stage(self, name: str) -> str | None:
        with self._lock:
            self.stages.append(name)
        if self.hold == name:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return self.refuse.get(name)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await self._stage("RCPT") or self.refuse_rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        if self.hold == "DATA":  # it has the message and keeps it, but its "250" never gets out
            with self._lock:
                self.received.append(received)
        reply = await self._stage("DATA")
        if reply:
            return reply
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if received not in self.received:
                self.received.append(received)
        return "250 2.0.0 queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if self.auth_reply:
            return AuthResult(success=False, handled=False, message=self.auth_reply)
        ok = isinstance(auth_data, LoginPassword) and (
            self.password is None or auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)

    def message_ids(self) -> list[str]:
        with self._lock:
            return [r.message["Message-ID"] for r in self.received]


class Server:
    def __init__(self, peer: Peer, *, auth: bool = False) -> None:
        self.peer = peer
        self.port = free_port()
        kw = {"authenticator": peer.authenticate, "auth_require_tls": False} if auth else {}
        self.controller = Controller(peer, hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()

    def stop(self) -> None:
        self.peer.release.set()
        self.controller.stop()


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
