"""The outbound queue as platform admins see it: listing, one mail with its attempts, stats, retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from logmail.config import OutboundSettings
from logmail.errors import ConflictError, NotFoundError
from logmail.store import outbound as repo
from logmail.store.database import Database
from logmail.store.models_outbound import OutboundEmail
from logmail.store.outbound import EXPIRED, FAILED, QUEUED, SENDING, SENT, STATUSES

log = logging.getLogger("logmail.outbound")

HOUR_MS = 3_600_000


class OutboundAdmin:
    """The admin side of :class:`logmail.services.outbound.OutboundService` (which provides these)."""

    db: Database
    settings: OutboundSettings
    _clock: Callable[[], int]
    enabled: bool

    def retry(self, email_uuid: str) -> dict[str, Any]:
        """Send a failed, expired or unconfirmed mail again (a queued one: now), with fresh attempts."""
        now = self._clock()
        table = OutboundEmail
        with self.db.write_connection() as conn:
            changed = conn.execute(
                update(table)
                .where(table.uuid == email_uuid,
                       table.status.in_((QUEUED, FAILED, EXPIRED)) | ((table.status == SENT) & table.sent_at.is_(None)))
                .values(status=QUEUED, attempts=0, next_attempt_at=now, updated_at=now,
                        expires_at=now + self.settings.expiry_hours * HOUR_MS)
            ).rowcount
            status = conn.execute(select(table.status).where(table.uuid == email_uuid)).scalar_one_or_none()
        if status is None:
            raise NotFoundError("no such outbound mail")
        if not changed:
            raise ConflictError("the mail is being sent right now" if status == SENDING
                                else "the mail was sent and its delivery confirmed")
        log.info("outbound mail %s queued again by an admin", email_uuid)
        return self.get(email_uuid)

    def list(self, *, status: str | None, kind: str | None, limit: int, offset: int,
             ) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_page(session, status, kind, limit, offset)
            return [self._json(*r) for r in rows], total

    def get(self, email_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            found = repo.by_uuid(session, email_uuid)
            if found is None:
                raise NotFoundError("no such outbound mail")
            out = self._json(*found, detail=True)
            out["attempts"] = [attempt_json(a) for a in repo.attempts_of(session, found[0].id)]
            return out

    def stats(self, window_hours: int) -> dict[str, Any]:
        """Mail queued in the last ``window_hours`` by status, and every attempt since by server."""
        since = self._clock() - window_hours * HOUR_MS
        with self.db.read() as session:
            counts = {s: 0 for s in STATUSES} | repo.counts_by_status(session, since)
            servers = repo.attempts_by_server(session, since)
        return {"windowHours": window_hours, "since": since, "counts": counts, "total": sum(counts.values()),
                "attempts": [{"server": s, "outcome": o, "count": n,
                              "averageDurationMs": round(avg) if avg is not None else None}
                             for s, o, n, avg in servers],
                "configured": self.enabled}

    def _json(self, row: OutboundEmail, org_uuid: str | None, user_uuid: str | None, *,
              detail: bool = False) -> dict[str, Any]:
        out = {"id": row.uuid, "kind": row.kind, "organizationId": org_uuid, "userId": user_uuid,
               "recipient": row.recipient, "subject": row.subject, "status": row.status,
               "attemptCount": row.attempts, "maxAttempts": self.settings.max_attempts,
               "nextAttemptAt": row.next_attempt_at if row.status == QUEUED else None,
               "expiresAt": row.expires_at, "lastError": row.last_error, "messageId": row.message_id,
               "deliveryConfirmed": row.status == SENT and row.sent_at is not None,
               "createdAt": row.created_at, "updatedAt": row.updated_at, "sentAt": row.sent_at}
        if detail:
            out.update(textBody=row.text_body, htmlBody=row.html_body,
                       claimedBy=row.claimed_by, claimedUntil=row.claimed_until)
        return out



def attempt_json(row) -> dict[str, Any]:
    return {"server": row.server, "outcome": row.outcome, "code": row.code, "message": row.message,
            "durationMs": row.duration_ms, "createdAt": row.created_at}
