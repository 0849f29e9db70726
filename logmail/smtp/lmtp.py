"""The LMTP listener (RFC 2033) for Postfix's ``lmtp`` transport: one reply per recipient.

Postfix has already accepted the mail, so the useful answers here are per recipient: 250 once the
message is stored durably, the policy's refusal (5xx: Postfix bounces that recipient only) and 451
while storage is unavailable (Postfix keeps the message queued and tries again). Postfix's policy
service counted the rate when the mail came in, so the recipient checks here do not count again.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope, Session

from logmail.config import SmtpSettings
from logmail.errors import LogmailError
from logmail.services.accept import DurableAcceptor, Envelope
from logmail.services.policy import PolicyService
from logmail.smtp import replies
from logmail.smtp.admission import POLICY_TROUBLE, Admission, build_routes, declared_size
from logmail.smtp.server import _FastPaths

log = logging.getLogger("logmail.lmtp")

# What aiosmtpd answers by itself at the end of DATA for a message it would not read in full: one
# line, where an LMTP client waits for one per recipient.
_SINGLE_DATA_ERRORS = ("552 Error: Too much mail data", "500 Line too long")


class CaptureLMTP(_FastPaths, LMTP):
    """aiosmtpd's LMTP, which leaves the per-recipient replies to the handler, but sends its own
    size and line-length refusals once; those are repeated here for every recipient."""

    _lmtp_recipients = 0

    async def smtp_DATA(self, arg: str) -> None:
        self._lmtp_recipients = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        try:
            await super().smtp_DATA(arg)
        finally:
            self._lmtp_recipients = 0

    async def push(self, status):
        if self._lmtp_recipients > 1 and isinstance(status, str) and status.startswith(_SINGLE_DATA_ERRORS):
            status = "\r\n".join([status] * self._lmtp_recipients)
        await super().push(status)


class LmtpHandler:
    def __init__(self, acceptor: DurableAcceptor, *, policy: PolicyService | None = None,
                 max_recipients: int = 100, max_message_size: int | None = None) -> None:
        self.acceptor = acceptor
        self.admission = Admission(policy, log)
        self.max_recipients = max_recipients
        self.max_message_size = max_message_size
        self._unavailable = False

    async def handle_RCPT(self, server: LMTP, session: Session, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        organization = None
        if self.admission.platform:
            decision = await self.admission.recipient(address, size=declared_size(envelope.mail_options), count=False)
            if decision is None:
                return POLICY_TROUBLE
            if not decision.accepted:
                return decision.smtp_reply()
            organization = decision.organization_id
        if not hasattr(envelope, "organizations"):
            envelope.organizations = []
        envelope.organizations.append(organization)
        envelope.rcpt_tos.append(address)
        return replies.OK_RECIPIENT

    async def handle_DATA(self, server: LMTP, session: Session, envelope: SmtpEnvelope) -> str:
        """One status line per accepted RCPT, in RCPT order, joined by CRLF (aiosmtpd sends it as is)."""
        try:
            return "\r\n".join(await self._deliver(session, envelope))
        except Exception:  # an exception here would be one reply where the client waits for several
            log.exception("could not deliver a message from %s", session.peer)
            return "\r\n".join([replies.TEMPORARY_FAILURE] * len(envelope.rcpt_tos))

    async def _deliver(self, session: Session, envelope: SmtpEnvelope) -> list[str]:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):  # only when decode_data=True, which logmail never sets
            raw = raw.encode("utf-8", "surrogateescape")
        rcpts = list(envelope.rcpt_tos)
        if self.max_message_size and len(raw) > self.max_message_size:
            return [replies.MESSAGE_TOO_BIG] * len(rcpts)
        organizations = getattr(envelope, "organizations", [None] * len(rcpts))
        statuses: list[str | None] = [None] * len(rcpts)  # None: accepted so far
        routes = None
        if self.admission.platform:
            decisions = await self.admission.sizes(organizations, len(raw))
            if decisions is None:
                return [POLICY_TROUBLE] * len(rcpts)
            for i, org in enumerate(organizations):
                if not decisions[org].accepted:
                    statuses[i] = decisions[org].smtp_reply()
            kept = [i for i, status in enumerate(statuses) if status is None]
            routes = build_routes([rcpts[i] for i in kept], [organizations[i] for i in kept])
        accepted = [rcpts[i] for i, status in enumerate(statuses) if status is None]
        if not accepted:
            return [s for s in statuses if s is not None]
        env = Envelope(mail_from=envelope.mail_from or "", rcpt_to=accepted, source="lmtp", routes=routes)
        try:
            ingest_id = await self.acceptor.accept(raw, env)
        except Exception as exc:  # storage unavailable: every accepted recipient waits in Postfix's queue
            self._note_unavailable(exc, session)
            ok = replies.TEMPORARY_FAILURE
        else:
            if self._unavailable:
                log.info("storage is accepting mail again")
                self._unavailable = False
            log.debug("accepted %s from %s for %d recipient(s)", ingest_id, envelope.mail_from, len(accepted))
            ok = f"{replies.OK_ACCEPTED} as {ingest_id}"
        return [ok if status is None else status for status in statuses]

    def _note_unavailable(self, exc: BaseException, session: Session) -> None:
        if self._unavailable:
            return
        self._unavailable = True
        if isinstance(exc, LogmailError):
            log.warning("storage unavailable, answering 451 until it recovers: %s", exc)
        else:
            log.warning("could not accept a message from %s, answering 451", session.peer, exc_info=exc)


def lmtp_protocol_factory(smtp: SmtpSettings, handler: LmtpHandler):
    """LMTP runs beside the MTA on a trusted socket: no TLS and no AUTH (Postfix's ``lmtp`` client
    would need its own SASL set-up for them); size, line and timeout limits are the SMTP listener's."""
    kwargs = dict(
        data_size_limit=smtp.max_message_size,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=smtp.hostname,
        ident="logmail LMTP",
        timeout=smtp.timeout,
    )
    return lambda: CaptureLMTP(handler, **kwargs)


async def start_lmtp(smtp: SmtpSettings, handler: LmtpHandler, sock) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lmtp_protocol_factory(smtp, handler), sock=sock)
