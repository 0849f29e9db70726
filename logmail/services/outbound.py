"""Mail logmail sends (notifications and alerts): queued in SQL, delivered with failover and retry.

A mail's life (``OutboundEmail.status``)::

    queued ──claim──▶ sending ──▶ sent      a server took it
      ▲                  │    └──▶ failed    a 5xx (permanent), or out of attempts
      └── back off ◀─────┘                   no connection, a timeout or a 4xx from every server
    queued ──▶ expired                       still unsent ``outbound.expiry_hours`` after it was queued

One *attempt* tries the primary server and, on a connection error, a timeout or a 4xx, the backup;
every server tried is one row of the attempt log (server, outcome, SMTP code and text, duration).
A 5xx from either server is permanent: the mail fails at once. After a failed attempt the next one
waits ``retry_base_delay · 2^(attempts - 1)`` seconds (60, 120, 240, 480 s with the defaults); the
attempt numbered ``max_attempts`` is the last.

**Never twice.** A daemon claims a mail (``sending``, ``claimed_by``, ``claimed_until``) with a
conditional UPDATE before it talks to any server, so of several daemons exactly one sends it. It
writes a ``started`` attempt row before connecting, and marks that row ``delivering`` after the
server answered DATA with 354 and *before* the message itself goes out; the claim is renewed at
each step. A daemon that dies leaves a claim that runs out, and the next pass reconciles the mail
from its last attempt:

* ``started`` (or none): the server never received the message's end, so it cannot have accepted
  it; the mail is queued again at once (the interrupted try counts as an attempt, so a mail that
  keeps killing its sender still stops at ``max_attempts``);
* ``delivering``: the server may have accepted it. The mail is marked ``sent`` **without** a
  ``sent_at`` and with a ``last_error`` saying delivery is unconfirmed, and it is not resent: one
  notification lost to a crash is better than one sent twice. Its Message-ID finds it in the relay's
  log; an admin may retry it.

A live sender follows the same rule: once the message has been handed over, a timeout or a dropped
connection before the server's final reply is "unconfirmed" (``unknown`` in the attempt log), never
a reason to send again. An explicit 4xx/5xx to the final dot is an answer, and counts as one.

The SMTP password is never logged and never stored: server replies are scrubbed of it (and of its
base64 forms, as AUTH sends it) before they reach the attempt log or ``last_error``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from logmail.config import OutboundSettings
from logmail.errors import BadRequestError, NotFoundError
from logmail.store import outbound as repo
from logmail.store.database import Database
from logmail.store.models import User
from logmail.services.outbound_admin import HOUR_MS, OutboundAdmin
from logmail.store.models_outbound import OutboundEmail
from logmail.store.outbound import FAILED, QUEUED, SENT

log = logging.getLogger("logmail.outbound")

KINDS = ("notification", "alert")
# Outcomes in the attempt log.
STARTED, DELIVERING = "started", "delivering"
OUTCOME_SENT, TEMPORARY, PERMANENT, UNKNOWN = "sent", "temporary", "permanent", "unknown"
UNCONFIRMED = ("delivery unconfirmed: {why}; it is not sent again, to avoid a duplicate (Message-ID {mid}, "
               "server {server})")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,255}$")


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """What a sender needs to put one mail on the wire."""

    uuid: str
    recipient: str
    subject: str
    text: str
    html: str | None
    message_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: str          # sent | temporary | permanent | unknown
    code: int | None = None
    message: str = ""


class Sender(Protocol):
    def send(self, mail: OutgoingMail, server: Server, handing_over: Callable[[], bool]) -> DeliveryResult:
        """Deliver ``mail`` to ``server``; never raises for what a server or the network does.

        ``handing_over()`` is called once the server has agreed to take the message (354 to DATA)
        and before the message goes out; if it returns False the sender must not send it, and
        returns a ``temporary`` result. After the message went out, no final reply is ``unknown``.
        """


class OutboundService(OutboundAdmin):
    """Queueing and sending; the admin views come from :class:`OutboundAdmin`."""

    def __init__(self, db: Database, settings: OutboundSettings, clock: Callable[[], int], *,
                 owner: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self._clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Set by the daemon (logmail.daemon.outbound_job.install_sender): services do not speak SMTP.
        self.sender: Sender | None = None
        self._unreachable: set[str] = set()  # "cannot connect" is logged once per outage, not per try

    @property
    def enabled(self) -> bool:
        """Whether mail is sent at all (``outbound.smtp_host`` set); if not, nothing is queued."""
        return bool(self.settings.smtp_host)

    def servers(self) -> list[Server]:
        s = self.settings
        servers = [Server(s.smtp_host, s.smtp_port)]
        if s.smtp_backup_host:
            servers.append(Server(s.smtp_backup_host, s.smtp_backup_port))
        return servers

    @property
    def claim_ms(self) -> int:
        # Longer than the longest stretch between two renewals: connect, TLS, AUTH and the envelope,
        # each allowed ``timeout`` seconds, with room to spare.
        return int((10 * self.settings.timeout + 30) * 1000)

    def delay_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th failed attempt: base, doubling per attempt."""
        return self.settings.retry_base_delay * 1000 * 2 ** max(attempts - 1, 0)

    # -- queueing --------------------------------------------------------------------------------

    def send_notification(self, user: User | int, subject: str, text: str, html: str | None = None, *,
                          session=None) -> str | None:
        """Queue a mail to a user's address; its id, or None when outbound mail is not configured.

        With ``session`` it is queued inside the caller's transaction (and commits with it).
        """
        if not self.enabled:
            return None

        def queue(s) -> str:
            row = user if isinstance(user, User) else s.get(User, int(user))
            if row is None:
                raise NotFoundError("user not found")
            return self._queue(s, "notification", row.email, subject, text, html, row.organization_id, row.id)

        return self._within(session, queue)

    def send_alert(self, recipient: str, subject: str, text: str, html: str | None = None, *,
                   session=None) -> str | None:
        """Queue an alert to any address (an operator's mailbox); its id, or None when not configured."""
        if not self.enabled:
            return None
        return self._within(session, lambda s: self._queue(s, "alert", recipient, subject, text, html, None, None))

    def _within(self, session, fn: Callable[[Any], str]) -> str:
        if session is not None:
            return fn(session)
        with self.db.write() as s:
            return fn(s)

    def _queue(self, session, kind: str, recipient: str, subject: str, text: str, html: str | None,
               organization_id: int | None, user_id: int | None) -> str:
        recipient = (recipient or "").strip()
        if not _ADDRESS.match(recipient):
            raise BadRequestError("the recipient must be one plain email address")
        now = self._clock()
        mail_uuid = str(uuid.uuid4())
        domain = self.settings.from_email.rpartition("@")[2] or "localhost"
        session.add(OutboundEmail(
            uuid=mail_uuid, organization_id=organization_id, user_id=user_id, kind=kind, recipient=recipient,
            subject=" ".join((subject or "").split())[:998],  # one line: no header injection
            text_body=text or "", html_body=html, message_id=f"<{mail_uuid}@{domain}>", status=QUEUED,
            attempts=0, next_attempt_at=now, expires_at=now + self.settings.expiry_hours * HOUR_MS,
            created_at=now, updated_at=now))
        session.flush()
        log.info("queued %s %s", kind, mail_uuid)
        return mail_uuid

    # -- processing ------------------------------------------------------------------------------

    def process_due(self, now: int | None = None, *, limit: int = 100,
                    keep_alive: Callable[[], bool] | None = None) -> dict[str, int]:
        """One pass: expire what is too old, reconcile claims that ran out, send what is due.

        ``now`` (epoch ms) stands in for the clock during the whole pass. ``keep_alive`` is asked
        between mails; when it returns False the pass stops. Returns what happened, by outcome.
        """
        clock = self._clock if now is None else (lambda: now)
        report = {"expired": self.expire(clock()), "reconciled": self.reconcile(clock()), "sent": 0,
                  "unconfirmed": 0, "retrying": 0, "failed": 0}
        if not self.enabled or self.sender is None:
            return report
        with self.db.connect() as conn:
            due = repo.due_ids(conn, clock(), limit)
        for email_id in due:
            if keep_alive is not None and not keep_alive():
                break
            outcome = self._send_one(email_id, clock)
            if outcome is not None:
                report[outcome] += 1
        if any(report.values()):
            log.info("outbound pass: %s", ", ".join(f"{k} {v}" for k, v in report.items() if v))
        return report

    def expire(self, now: int) -> int:
        with self.db.write_connection() as conn:
            count = repo.expire(conn, now, f"expired: not sent within {self.settings.expiry_hours} h")
        if count:
            log.warning("%d outbound mail(s) expired unsent", count)
        return count

    def reconcile(self, now: int) -> int:
        """Settle mail whose sender's claim ran out (it died or stalled), from the attempt log."""
        with self.db.connect() as conn:
            stale = repo.stale_claims(conn, now)
        settled = 0
        for email_id, claimer, attempts in stale:
            with self.db.write_connection() as conn:
                last = repo.last_attempt(conn, email_id)
                mid = conn.execute(select(OutboundEmail.message_id).where(OutboundEmail.id == email_id)).scalar_one()
                if last is not None and last.outcome == OUTCOME_SENT:  # recorded, but not yet on the mail
                    values, attempt = {"status": SENT, "sent_at": now, "next_attempt_at": 0, "last_error": None}, None
                elif last is not None and last.outcome in (DELIVERING, UNKNOWN):
                    why = "the sending daemon stopped after handing the message over"
                    values = {"status": SENT, "sent_at": None, "next_attempt_at": 0,
                              "last_error": UNCONFIRMED.format(why=why, mid=mid, server=last.server)[:1000]}
                    attempt = (UNKNOWN, why) if last.outcome == DELIVERING else None
                else:
                    why = "the sending daemon stopped before handing the message over"
                    values = ({"status": FAILED, "next_attempt_at": 0,
                               "last_error": f"gave up after {attempts} attempts; the last: {why}"}
                              if attempts >= self.settings.max_attempts else
                              {"status": QUEUED, "next_attempt_at": now, "last_error": f"{why}; sending again"})
                    attempt = (TEMPORARY, why) if last is not None and last.outcome == STARTED else None
                if not repo.release_stale(conn, email_id, claimer, now, values):
                    continue  # settled by someone else meanwhile
                if attempt is not None:
                    repo.record_attempt(conn, last.id, attempt[0], message=attempt[1])
            settled += 1
            log.warning("outbound mail %s: claim of %s ran out; now %s", mid, claimer, values["status"])
        return settled

    def _send_one(self, email_id: int, clock: Callable[[], int]) -> str | None:
        now = clock()
        with self.db.write_connection() as conn:
            if not repo.claim(conn, email_id, self.owner, now, now + self.claim_ms):
                return None  # another daemon took it first
            row = conn.execute(select(OutboundEmail.__table__).where(OutboundEmail.id == email_id)).one()
        mail = OutgoingMail(row.uuid, row.recipient, row.subject, row.text_body, row.html_body, row.message_id,
                            row.created_at)
        last: tuple[Server, DeliveryResult] | None = None
        for server in self.servers():
            attempt_id = self._start_attempt(email_id, server, clock)
            if attempt_id is None:
                log.warning("outbound mail %s: lost its claim before trying %s", row.uuid, server.label)
                return None
            handed_over = False

            def handing_over(attempt_id: int = attempt_id) -> bool:
                nonlocal handed_over
                handed_over = self._mark_delivering(email_id, attempt_id, clock)
                return handed_over

            started = time.monotonic()
            try:
                result = self.sender.send(mail, server, handing_over)
            except Exception:  # a bug in the sender: no resend once the message may have gone
                log.exception("outbound mail %s: the sender failed on %s", row.uuid, server.label)
                result = DeliveryResult(UNKNOWN if handed_over else TEMPORARY, None,
                                        "internal error in the sender; see the daemon's log")
            outcome = result.outcome
            if handed_over and outcome == TEMPORARY and result.code is None:
                outcome = UNKNOWN  # no answer once the message went out is never a reason to send again
            result = DeliveryResult(outcome, result.code, self.scrub(result.message))
            duration = int((time.monotonic() - started) * 1000)
            self._note_server(server, result)
            if result.outcome != TEMPORARY:
                return self._conclude(row, attempt_id, server, result, duration, clock)
            with self.db.write_connection() as conn:
                repo.record_attempt(conn, attempt_id, TEMPORARY, code=result.code, message=result.message,
                                    duration_ms=duration)
            last = (server, result)
        return self._back_off(row, last, clock)

    def _start_attempt(self, email_id: int, server: Server, clock: Callable[[], int]) -> int | None:
        now = clock()
        with self.db.write_connection() as conn:
            if not repo.renew(conn, email_id, self.owner, now + self.claim_ms):
                return None
            return repo.start_attempt(conn, email_id, server.label, now)

    def _mark_delivering(self, email_id: int, attempt_id: int, clock: Callable[[], int]) -> bool:
        """Written before the message goes out: from here on, a crash means "maybe delivered"."""
        try:
            with self.db.write_connection() as conn:
                if not repo.renew(conn, email_id, self.owner, clock() + self.claim_ms):
                    return False
                repo.record_attempt(conn, attempt_id, DELIVERING)
                return True
        except Exception as exc:  # cannot record it: then do not send it
            log.warning("outbound mail %d: could not mark the attempt (%s); not sending now", email_id, exc)
            return False

    def _conclude(self, row, attempt_id: int, server: Server, result: DeliveryResult, duration: int,
                  clock: Callable[[], int]) -> str:
        now = clock()
        reply = _reply(server, result)
        if result.outcome == OUTCOME_SENT:
            values, outcome = {"status": SENT, "sent_at": now, "last_error": None}, "sent"
        elif result.outcome == UNKNOWN:
            why = result.message or "no final reply after the message was handed over"
            values = {"status": SENT, "sent_at": None,
                      "last_error": UNCONFIRMED.format(why=why, mid=row.message_id, server=server.label)[:1000]}
            outcome = "unconfirmed"
        else:
            values, outcome = {"status": FAILED, "last_error": f"refused permanently by {reply}"[:1000]}, "failed"
        with self.db.write_connection() as conn:
            repo.record_attempt(conn, attempt_id, result.outcome, code=result.code, message=result.message,
                                duration_ms=duration)
            mine = repo.finish(conn, row.id, self.owner, {**values, "next_attempt_at": 0, "updated_at": now})
        if not mine:
            log.warning("outbound mail %s: its claim ran out while sending; the attempt log has the outcome",
                        row.uuid)
        (log.info if outcome == "sent" else log.warning)("outbound mail %s: %s via %s (%s) in %d ms", row.uuid,
                                                         outcome, server.label, result.code, duration)
        return outcome

    def _back_off(self, row, last: tuple[Server, DeliveryResult] | None, clock: Callable[[], int]) -> str:
        now = clock()
        attempts = row.attempts  # already counts this one (the claim added it)
        reply = _reply(*last) if last else "no server configured"
        if attempts >= self.settings.max_attempts:
            values = {"status": FAILED, "next_attempt_at": 0,
                      "last_error": f"gave up after {attempts} attempts; the last: {reply}"[:1000]}
            outcome = "failed"
        else:
            delay = self.delay_ms(attempts)
            values = {"status": QUEUED, "next_attempt_at": now + delay,
                      "last_error": f"{reply}; next attempt in {delay // 1000} s"[:1000]}
            outcome = "retrying"
        with self.db.write_connection() as conn:
            repo.finish(conn, row.id, self.owner, {**values, "updated_at": now})
        log.info("outbound mail %s: attempt %d failed (%s); %s", row.uuid, attempts, reply, outcome)
        return outcome

    def _note_server(self, server: Server, result: DeliveryResult) -> None:
        if result.outcome == TEMPORARY and result.code is None:
            if server.label not in self._unreachable:
                self._unreachable.add(server.label)
                log.warning("SMTP server %s unreachable: %s", server.label, result.message)
        elif server.label in self._unreachable:
            self._unreachable.discard(server.label)
            log.info("SMTP server %s reachable again", server.label)

    def scrub(self, text: str | None) -> str:
        """``text`` without the SMTP password in any form AUTH may have sent it in."""
        text = text or ""
        password = self.settings.smtp_password
        if not password:
            return text
        user = self.settings.smtp_user
        secrets = {password, base64.b64encode(password.encode()).decode(),
                   base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
                   base64.b64encode(f"{user}\0{password}".encode()).decode()}
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "********")
        return text


def _reply(server: Server, result: DeliveryResult) -> str:
    code = f"{result.code} " if result.code is not None else ""
    return f"{server.label}: {code}{result.message}".strip()
