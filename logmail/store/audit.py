"""The audit log and the security-event trail: appended to, read page by page, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from logmail.store.models import AuditEntry, Organization, SecurityEvent, new_uuid


@dataclass(slots=True)
class AuditFilter:
    actor_user_uuid: str | None = None
    action: str | None = None
    since: int | None = None
    until: int | None = None


def add_entry(session: Session, organization_id: int, *, action: str, created_at: int,
              actor_user_uuid: str | None = None, actor_token_uuid: str | None = None,
              target_type: str | None = None, target_id: str | None = None, details: dict[str, Any] | None = None,
              ip: str = "") -> None:
    session.execute(insert(AuditEntry).values(
        uuid=new_uuid(), organization_id=organization_id, actor_user_uuid=actor_user_uuid,
        actor_token_uuid=actor_token_uuid, action=action, target_type=target_type, target_id=target_id,
        details=details or {}, ip=ip[:45], created_at=created_at))


def list_entries(session: Session, organization_id: int, flt: AuditFilter, *, limit: int, offset: int,
                 ) -> tuple[list[AuditEntry], int]:
    conds = [AuditEntry.organization_id == organization_id, *_conditions(flt)]
    total = session.execute(select(func.count()).select_from(AuditEntry).where(*conds)).scalar_one()
    rows = session.execute(
        select(AuditEntry).where(*conds).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .offset(offset).limit(limit)
    ).scalars().all()
    return list(rows), total


def list_all_entries(session: Session, flt: AuditFilter, *, organization_uuid: str | None, limit: int,
                     offset: int) -> tuple[list[tuple[AuditEntry, str]], int]:
    """Entries of every organisation (platform admins), newest first, each with its organisation's
    uuid; only ``organization_uuid``'s when given."""
    conds = _conditions(flt)
    if organization_uuid is not None:
        conds.append(Organization.uuid == organization_uuid)
    total = session.execute(select(func.count()).select_from(AuditEntry)
                            .join(Organization, Organization.id == AuditEntry.organization_id).where(*conds)
                            ).scalar_one()
    rows = session.execute(
        select(AuditEntry, Organization.uuid).join(Organization, Organization.id == AuditEntry.organization_id)
        .where(*conds).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows], total


def _conditions(flt: AuditFilter) -> list:
    conds = []
    if flt.actor_user_uuid:
        conds.append(AuditEntry.actor_user_uuid == flt.actor_user_uuid)
    if flt.action:
        conds.append(AuditEntry.action == flt.action)
    if flt.since is not None:
        conds.append(AuditEntry.created_at >= flt.since)
    if flt.until is not None:
        conds.append(AuditEntry.created_at < flt.until)
    return conds


def add_event(session: Session, *, event: str, created_at: int, organization_id: int | None = None,
              user_id: int | None = None, user_uuid: str | None = None, session_uuid: str | None = None,
              ip: str = "", user_agent: str = "", details: dict[str, Any] | None = None) -> None:
    session.execute(insert(SecurityEvent).values(
        uuid=new_uuid(), organization_id=organization_id, user_id=user_id, user_uuid=user_uuid,
        session_uuid=session_uuid, event=event, ip=ip[:45], user_agent=user_agent[:300], details=details or {},
        created_at=created_at))


def list_events(session: Session, organization_id: int, *, user_id: int | None, event: str | None,
                since: int | None, until: int | None, limit: int, offset: int) -> tuple[list[SecurityEvent], int]:
    """Events of one organisation, and only of one of its users when ``user_id`` is given."""
    conds = [SecurityEvent.organization_id == organization_id]
    if user_id is not None:
        conds.append(SecurityEvent.user_id == user_id)
    if event:
        conds.append(SecurityEvent.event == event)
    if since is not None:
        conds.append(SecurityEvent.created_at >= since)
    if until is not None:
        conds.append(SecurityEvent.created_at < until)
    total = session.execute(select(func.count()).select_from(SecurityEvent).where(*conds)).scalar_one()
    rows = session.execute(
        select(SecurityEvent).where(*conds).order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
        .offset(offset).limit(limit)
    ).scalars().all()
    return list(rows), total
