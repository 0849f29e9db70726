"""Outbound mail and its attempt log: the conditional updates that make claims safe between daemons.

Every state change of a mail is an ``UPDATE ... WHERE`` that names the state it expects (and, for a
claimed mail, the claimer), so of two daemons racing for one row exactly one changes it; the loser
sees ``rowcount == 0`` and leaves the mail alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select, true, update
from sqlalchemy.orm import Session

from logmail.store.models import Organization, User
from logmail.store.models_outbound import OutboundAttempt, OutboundEmail

QUEUED, SENDING, SENT, FAILED, EXPIRED = "queued", "sending", "sent", "failed", "expired"
STATUSES = (QUEUED, SENDING, SENT, FAILED, EXPIRED)


def due_ids(conn: Connection, now: int, limit: int) -> list[int]:
    """Queued mail whose next attempt is due and whose lifetime has not run out, oldest due first."""
    return list(conn.execute(
        select(OutboundEmail.id)
        .where(OutboundEmail.status == QUEUED, OutboundEmail.next_attempt_at <= now, OutboundEmail.expires_at > now)
        .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
        .limit(limit)
    ).scalars())


def claim(conn: Connection, email_id: int, owner: str, now: int, until: int) -> bool:
    """Take a due mail for sending: ``queued`` → ``sending``, one more attempt, claimed until ``until``."""
    return conn.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.status == QUEUED, OutboundEmail.next_attempt_at <= now,
               OutboundEmail.expires_at > now)
        .values(status=SENDING, claimed_by=owner, claimed_until=until, attempts=OutboundEmail.attempts + 1,
                updated_at=now)
    ).rowcount == 1


def renew(conn: Connection, email_id: int, owner: str, until: int) -> bool:
    """Extend our claim; False when the mail is no longer ours (our claim ran out and was reconciled)."""
    return conn.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.status == SENDING, OutboundEmail.claimed_by == owner)
        .values(claimed_until=until)
    ).rowcount == 1


def finish(conn: Connection, email_id: int, owner: str | None, values: dict[str, Any]) -> bool:
    """Leave ``sending`` (to any state) and drop the claim; ``owner`` None: whoever held it."""
    condition = [OutboundEmail.id == email_id, OutboundEmail.status == SENDING]
    if owner is not None:
        condition.append(OutboundEmail.claimed_by == owner)
    return conn.execute(
        update(OutboundEmail).where(*condition).values(claimed_by=None, claimed_until=None, **values)
    ).rowcount == 1


def expire(conn: Connection, now: int, message: str) -> int:
    """Queued mail past its lifetime becomes ``expired``; returns how many."""
    return conn.execute(
        update(OutboundEmail)
        .where(OutboundEmail.status == QUEUED, OutboundEmail.expires_at <= now)
        .values(status=EXPIRED, last_error=message, next_attempt_at=0, updated_at=now)
    ).rowcount


def stale_claims(conn: Connection, now: int, limit: int = 100) -> list[tuple[int, str | None, int]]:
    """Mail left ``sending`` by a claim that ran out (its daemon died or stalled): (id, claimer, attempts)."""
    return [tuple(r) for r in conn.execute(
        select(OutboundEmail.id, OutboundEmail.claimed_by, OutboundEmail.attempts)
        .where(OutboundEmail.status == SENDING, OutboundEmail.claimed_until <= now)
        .order_by(OutboundEmail.id).limit(limit)
    )]


def release_stale(conn: Connection, email_id: int, claimer: str | None, now: int, values: dict[str, Any]) -> bool:
    """Reconcile one stale claim, if it is still the one we looked at."""
    owner = OutboundEmail.claimed_by == claimer if claimer is not None else OutboundEmail.claimed_by.is_(None)
    return conn.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.status == SENDING, owner, OutboundEmail.claimed_until <= now)
        .values(claimed_by=None, claimed_until=None, updated_at=now, **values)
    ).rowcount == 1


def last_attempt(conn: Connection, email_id: int) -> Any:
    return conn.execute(
        select(OutboundAttempt.id, OutboundAttempt.outcome, OutboundAttempt.server)
        .where(OutboundAttempt.email_id == email_id)
        .order_by(OutboundAttempt.id.desc()).limit(1)
    ).first()


def start_attempt(conn: Connection, email_id: int, server: str, now: int) -> int:
    result = conn.execute(OutboundAttempt.__table__.insert().values(
        email_id=email_id, server=server[:300], outcome="started", duration_ms=0, created_at=now))
    return result.inserted_primary_key[0]


def record_attempt(conn: Connection, attempt_id: int, outcome: str, *, code: int | None = None,
                   message: str | None = None, duration_ms: int | None = None) -> None:
    values: dict[str, Any] = {"outcome": outcome}
    if code is not None:
        values["code"] = code
    if message is not None:
        values["message"] = message[:1000]
    if duration_ms is not None:
        values["duration_ms"] = max(0, min(duration_ms, 2**31 - 1))
    conn.execute(update(OutboundAttempt).where(OutboundAttempt.id == attempt_id).values(**values))


# -- reading, for the admin endpoints ------------------------------------------------------------------


def _listing():
    return (select(OutboundEmail, Organization.uuid, User.uuid)
            .outerjoin(Organization, Organization.id == OutboundEmail.organization_id)
            .outerjoin(User, User.id == OutboundEmail.user_id))


def list_page(session: Session, status: str | None, kind: str | None, limit: int, offset: int,
              ) -> tuple[list[Any], int]:
    """(email, organisation uuid, user uuid) rows, newest first, and the total."""
    conditions = []
    if status is not None:
        conditions.append(OutboundEmail.status == status)
    if kind is not None:
        conditions.append(OutboundEmail.kind == kind)
    where = and_(true(), *conditions)
    total = session.execute(select(func.count()).select_from(OutboundEmail).where(where)).scalar_one()
    rows = session.execute(_listing().where(where)
                           .order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc())
                           .limit(limit).offset(offset)).all()
    return list(rows), total


def by_uuid(session: Session, email_uuid: str) -> Any:
    return session.execute(_listing().where(OutboundEmail.uuid == email_uuid)).first()


def attempts_of(session: Session, email_id: int) -> list[OutboundAttempt]:
    return list(session.execute(select(OutboundAttempt).where(OutboundAttempt.email_id == email_id)
                                .order_by(OutboundAttempt.id)).scalars())


def counts_by_status(session: Session, since: int) -> dict[str, int]:
    rows = session.execute(select(OutboundEmail.status, func.count()).where(OutboundEmail.created_at >= since)
                           .group_by(OutboundEmail.status)).all()
    return {status: n for status, n in rows}


def attempts_by_server(session: Session, since: int) -> list[tuple[str, str, int, float | None]]:
    """(server, outcome, count, average duration ms) of the attempts made since ``since``."""
    rows = session.execute(
        select(OutboundAttempt.server, OutboundAttempt.outcome, func.count(), func.avg(OutboundAttempt.duration_ms))
        .where(OutboundAttempt.created_at >= since)
        .group_by(OutboundAttempt.server, OutboundAttempt.outcome)
        .order_by(OutboundAttempt.server, OutboundAttempt.outcome)
    ).all()
    return [(server, outcome, n, float(avg) if avg is not None else None) for server, outcome, n, avg in rows]
