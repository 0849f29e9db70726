"""The inbound SMTP handler: validate, durably enqueue, reply. Nothing else happens here.

A 250 is sent only after ``DurableAcceptor.accept`` has put the raw bytes and the ingest job on
durable storage; if that fails for any reason the client gets a 451 and keeps the message.

In platform mode each RCPT asks the admission policy (and counts against the organisation's rate);
a refusal is answered with the policy's own reply. After DATA the real size is checked against the
tier of every organisation that accepted a recipient. SMTP has one reply for the whole message, and
a 250 would promise delivery to every accepted recipient, so if any of those organisations refuses
the message, the whole message is refused (with a permanent refusal first): the sender learns of
it, rather than some recipients silently getting nothing.
"""

from __future__ import annotations

import logging

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session

from logmail.errors import LogmailError
from logmail.services.accept import DurableAcceptor, Envelope
from logmail.services.policy import PolicyService
from logmail.smtp import replies
from logmail.smtp.admission import POLICY_TROUBLE, Admission, build_routes, declared_size, first_refusal

log = logging.getLogger("logmail.smtp")


class InboundHandler:
    def __init__(self, acceptor: DurableAcceptor, *, policy: PolicyService | None = None, max_recipients: int = 100,
                 max_message_size: int | None = None, source: str = "smtp") -> None:
        self.acceptor = acceptor
        # Local mode (or no policy): every recipient is caught, exactly as without one.
        self.admission = Admission(policy, log)
        self.max_recipients = max_recipients
        self.max_message_size = max_message_size
        self.source = source
        self._unavailable = False

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads commands as a stream, so pipelined clients already work; say so.
        if not any("PIPELINING" in r for r in responses):
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        if self.admission.platform:
            decision = await self.admission.recipient(address, size=declared_size(envelope.mail_options), count=True)
            if decision is None:
                return POLICY_TROUBLE
            if not decision.accepted:
                return decision.smtp_reply()
            # aiosmtpd makes a fresh envelope per transaction, so this list never outlives it.
            if not hasattr(envelope, "organizations"):
                envelope.organizations = []
            envelope.organizations.append(decision.organization_id)
        envelope.rcpt_tos.append(address)
        return replies.OK_RECIPIENT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):  # only when decode_data=True, which logmail never sets
            raw = raw.encode("utf-8", "surrogateescape")
        if self.max_message_size and len(raw) > self.max_message_size:
            return replies.MESSAGE_TOO_BIG
        env = Envelope(mail_from=envelope.mail_from or "", rcpt_to=list(envelope.rcpt_tos), source=self.source)
        if self.admission.platform:
            organizations = getattr(envelope, "organizations", [])
            decisions = await self.admission.sizes(organizations, len(raw))
            if decisions is None:
                return POLICY_TROUBLE
            refusal = first_refusal(decisions.values())
            if refusal is not None:
                return refusal.smtp_reply()
            env.routes = build_routes(env.rcpt_to, organizations)
        try:
            ingest_id = await self.acceptor.accept(raw, env)
        except LogmailError as exc:
            self._note_unavailable(exc)
            return replies.TEMPORARY_FAILURE
        except Exception as exc:  # never a silent drop: the client must keep the mail
            log.exception("could not accept message from %s", session.peer)
            self._note_unavailable(exc)
            return replies.TEMPORARY_FAILURE
        if self._unavailable:
            log.info("storage is accepting mail again")
            self._unavailable = False
        log.debug("accepted %s from %s for %d recipient(s)", ingest_id, envelope.mail_from, len(envelope.rcpt_tos))
        return f"{replies.OK_ACCEPTED} as {ingest_id}"

    def _note_unavailable(self, exc: BaseException) -> None:
        # One warning per outage, not one per message.
        if not self._unavailable:
            log.warning("storage unavailable, answering 451 until it recovers: %s", exc)
            self._unavailable = True
