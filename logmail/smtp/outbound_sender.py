"""The SMTP client of outbound mail: one try of one mail at one server, with aiosmtplib.

What the server answers decides the outcome: 2xx to the final dot is ``sent``; a 5xx at any stage
is ``permanent``; a 4xx, a refused or timed-out connection, or a TLS failure is ``temporary`` (the
service then tries the backup, then backs off). The message goes out only after the service has
recorded that it is about to (``handing_over``); once it has gone out, a timeout or a dropped
connection before the final reply is ``unknown``: the server may have accepted it.

DATA is sent in two steps (the DATA command, then the message and its dot) rather than with
``SMTP.data``, which does both at once, so that the record falls between them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from datetime import datetime, timezone

import aiosmtplib
from aiosmtplib import SMTPException, SMTPResponseException, SMTPServerDisconnected, SMTPTimeoutError

from logmail.config import OutboundSettings
from logmail.services.outbound import (
    OUTCOME_SENT,
    PERMANENT,
    TEMPORARY,
    UNKNOWN,
    DeliveryResult,
    OutgoingMail,
    Server,
)

log = logging.getLogger("logmail.outbound")

_LEADING_DOT = re.compile(rb"(?m)^\.")
_local_hostname: str | None = None


def _hostname() -> str:
    """The name we give in EHLO; looked up once (a reverse lookup may be slow)."""
    global _local_hostname
    if _local_hostname is None:
        _local_hostname = socket.getfqdn() or "localhost"
    return _local_hostname


def build_message(mail: OutgoingMail, settings: OutboundSettings) -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = formataddr((settings.from_name, settings.from_email))
    msg["To"] = mail.recipient
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(mail.created_at / 1000, timezone.utc))
    msg["Message-ID"] = mail.message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to notifications, please
    msg.set_content(mail.text or "")
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg.as_bytes()


def _data_payload(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF lines, leading dots doubled, ended by ``.``."""
    message = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return _LEADING_DOT.sub(b"..", message) + b".\r\n"


class SmtpOutboundSender:
    """:class:`logmail.services.outbound.Sender` over SMTP (STARTTLS, or implicit TLS on port 465)."""

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings

    def send(self, mail: OutgoingMail, server: Server, handing_over: Callable[[], bool]) -> DeliveryResult:
        try:
            return asyncio.run(self._send(mail, server, handing_over))
        except Exception as exc:  # the contract: what the network does is an outcome, not an exception
            log.debug("outbound mail %s: unexpected error on %s", mail.uuid, server.label, exc_info=True)
            return DeliveryResult(TEMPORARY, None, f"{type(exc).__name__}: {exc}"[:1000])

    async def _send(self, mail: OutgoingMail, server: Server, handing_over: Callable[[], bool]) -> DeliveryResult:
        s = self.settings
        implicit_tls = s.smtp_use_tls and server.port == 465
        client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=s.timeout,
                                 local_hostname=await asyncio.to_thread(_hostname), use_tls=implicit_tls,
                                 start_tls=bool(s.smtp_use_tls and not implicit_tls))
        payload = _data_payload(build_message(mail, s))
        handed_over = False
        try:
            await client.connect()
            if s.smtp_user:
                await client.login(s.smtp_user, s.smtp_password)
            await client.mail(s.from_email)
            await client.rcpt(mail.recipient)
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                return _by_code(reply.code, reply.message)
            if not handing_over():
                client.close()  # mid-DATA: only hanging up keeps the server from taking anything
                return DeliveryResult(TEMPORARY, None, "not sent: the claim on this mail could not be renewed")
            if client.protocol is None:
                raise SMTPServerDisconnected("connection lost")
            handed_over = True
            client.protocol.write(payload)
            reply = await client.protocol.read_response(timeout=s.timeout)
            if 200 <= reply.code < 300:
                return DeliveryResult(OUTCOME_SENT, reply.code, reply.message)
            return _by_code(reply.code, reply.message)
        except SMTPResponseException as exc:
            return _by_code(exc.code, exc.message)
        except (SMTPException, OSError, asyncio.TimeoutError) as exc:
            # Timeouts, refused or dropped connections; also STARTTLS or AUTH the server does not offer.
            client.close()
            if handed_over:
                return DeliveryResult(UNKNOWN, None, f"no final reply: {_describe(exc)}")
            return DeliveryResult(TEMPORARY, None, _describe(exc))
        finally:
            await _close(client)


def _by_code(code: int, message: str) -> DeliveryResult:
    if 500 <= code < 600:
        return DeliveryResult(PERMANENT, code, message)
    return DeliveryResult(TEMPORARY, code, message)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return f"timed out: {text}"
    return text


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit(timeout=5)
    except Exception:
        client.close()
