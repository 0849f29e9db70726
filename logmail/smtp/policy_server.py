"""The Postfix policy delegation service (``check_policy_service inet:127.0.0.1:10040``).

The protocol, as Postfix speaks it (SMTPD_POLICY_README): a request is ``name=value`` lines ending
with an empty line; the reply is exactly one ``action=...`` line and an empty line. Postfix keeps the
connection open and sends request after request on it. Unknown attribute names are ignored: Postfix
adds new ones from release to release.

At ``protocol_state=RCPT`` the answer is the admission policy's (``DUNNO`` when the recipient may come
in, so Postfix's later restrictions still have their say; otherwise the policy's SMTP reply, which
Postfix sends to the client as is), and the recipient counts against its organisation's rate. At
``END-OF-MESSAGE`` (``smtpd_end_of_data_restrictions``) a message for a single recipient is checked
against its tier's size limit. Everything else is ``DUNNO``.

When a decision cannot be made (the database is away, or anything else goes wrong) the service
sends no reply, logs a warning and closes the connection: Postfix then applies its own default for
an unavailable policy service (``451 4.3.5 Server configuration problem``), so the sender retries.
Input that is not the protocol (a line without ``=``, a line or a request too long, a connection
idle too long) closes the connection too.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from logmail.services.policy import PolicyService
from logmail.smtp.admission import Admission

log = logging.getLogger("logmail.policy")

MAX_LINE = 8 * 1024  # Postfix's own lines are far shorter; a longer one is not Postfix
MAX_ATTRIBUTES = 100  # Postfix 3.7 sends about 30
IDLE_TIMEOUT = 600.0  # longer than Postfix's smtpd_policy_service_max_idle (300 s): Postfix hangs up first

DUNNO = "DUNNO"


class ProtocolError(Exception):
    """The peer does not speak the policy protocol; the connection is closed."""


class PolicyServer:
    """Answers Postfix's policy requests, connection after connection, request after request."""

    def __init__(self, policy: PolicyService, *, idle_timeout: float = IDLE_TIMEOUT, max_line: int = MAX_LINE,
                 max_attributes: int = MAX_ATTRIBUTES) -> None:
        self.policy = policy
        self.admission = Admission(policy, log, meanwhile="not answering (Postfix defers)")
        self.idle_timeout = idle_timeout
        self.max_line = max_line
        self.max_attributes = max_attributes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, sock: socket.socket) -> asyncio.Server:
        # The reader's limit is what lets readuntil() refuse an over-long line instead of buffering it.
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=self.max_line + 1)
        return self._server

    async def close(self) -> None:
        """Stop listening and hang up on every client (Postfix would keep them open for minutes)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    # -- one connection ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._connections.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return  # the client hung up between requests, as Postfix does
                action = await self._decide(request)
                if action is None:  # no reply: Postfix applies its default, the sender retries later
                    log.debug("policy client %s: no decision; closing without a reply", _shown(peer))
                    return
                writer.write(f"action={action}\n\n".encode("utf-8", "surrogateescape"))
                await writer.drain()
        except ProtocolError as exc:
            log.warning("policy client %s: %s; closing the connection", _shown(peer), exc)
        except asyncio.TimeoutError:
            log.info("policy client %s idle for %.0f s; closing the connection", _shown(peer), self.idle_timeout)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # gone in the middle of a request: nothing to answer
        finally:
            self._connections.discard(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _read_request(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        """The next request's attributes; None when the connection ends cleanly before one starts."""
        attributes: dict[str, str] = {}
        while True:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self.idle_timeout)
            except asyncio.LimitOverrunError:
                raise ProtocolError(f"a line longer than {self.max_line} bytes") from None
            except asyncio.IncompleteReadError as exc:
                if not exc.partial and not attributes:
                    return None
                raise
            line = line.rstrip(b"\r\n")
            if not line:
                if attributes:
                    return attributes
                continue  # a stray empty line between requests asks nothing
            name, eq, value = line.partition(b"=")
            if not eq or not name:
                raise ProtocolError("a line that is not name=value")
            if len(attributes) >= self.max_attributes:
                raise ProtocolError(f"a request with more than {self.max_attributes} attributes")
            attributes[name.decode("ascii", "replace")] = value.decode("utf-8", "surrogateescape")

    async def _decide(self, request: dict[str, str]) -> str | None:
        if request.get("request") != "smtpd_access_policy":
            return DUNNO  # not a question this service answers (a newer or a different client)
        state = request.get("protocol_state", "").upper()
        recipient = request.get("recipient", "")
        if not recipient or state not in ("RCPT", "END-OF-MESSAGE"):
            return DUNNO
        size = _size(request.get("size", ""))
        if state == "END-OF-MESSAGE":
            # Postfix names the recipient at END-OF-MESSAGE only when there is exactly one.
            if size is None or not self.admission.platform:
                return DUNNO
            decision = await self.admission.recipient(recipient, size=size, count=False)
            if decision is None:
                return None
            return decision.postfix_action() if decision.reason == "too_big" else DUNNO
        if not self.admission.platform:
            return DUNNO  # local mode catches every address
        decision = await self.admission.recipient(recipient, size=size, count=True)
        if decision is None:
            return None
        return decision.postfix_action()


def _size(text: str) -> int | None:
    # Postfix sends size=0 when the client declared no SIZE.
    return int(text) if text.isdigit() and int(text) > 0 else None


def _shown(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
