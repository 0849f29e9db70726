"""Queries across organisations, for platform administration only.

Everything else in the store names the organisation it reads. These deliberately do not: platform
administration is about every organisation at once. Only the ``services/admin_*`` modules call them,
and those only for a platform administrator (the API's ``/admin/*`` routes or ``logmail admin``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from logmail.store.models import (
    ApiToken,
    EmailAddress,
    MailAccount,
    Message,
    Organization,
    RefreshToken,
    User,
    UserSession,
)

CHUNK = 500  # ids per IN (...) list


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


ESCAPE = "!"  # not a backslash: MySQL and SQLite read backslashes in literals differently


def _contains(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere (with ``escape=ESCAPE``), its own % and _ taken literally."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


# -- users -------------------------------------------------------------------------------------------


def list_users(session: Session, *, email: str | None, organization_id: int | None, limit: int, offset: int,
               ) -> tuple[list[tuple[User, Organization]], int]:
    conds = []
    if email:
        conds.append(User.email.like(_contains(email.lower()), escape=ESCAPE))
    if organization_id is not None:
        conds.append(User.organization_id == organization_id)
    total = session.execute(select(func.count()).select_from(User).where(*conds)).scalar_one()
    rows = session.execute(
        select(User, Organization).join(Organization, Organization.id == User.organization_id).where(*conds)
        .order_by(User.id).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows], total


def user_by_uuid(session: Session, user_uuid: str) -> tuple[User, Organization] | None:
    row = session.execute(
        select(User, Organization).join(Organization, Organization.id == User.organization_id)
        .where(User.uuid == user_uuid)
    ).first()
    return (row[0], row[1]) if row else None


def user_facts(session: Session, user_id: int, now: int) -> dict[str, Any]:
    """What an administrator wants to know about one user beyond the row itself."""
    def count(model, *conds) -> int:
        return session.execute(select(func.count()).select_from(model).where(*conds)).scalar_one()

    return {
        "activeSessions": count(UserSession, UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
                                UserSession.expires_at > now),
        "apiTokens": count(ApiToken, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)),
        "mailboxAccounts": count(MailAccount, MailAccount.user_id == user_id, MailAccount.is_enabled.is_(True)),
        "lastLoginAt": session.execute(select(func.max(UserSession.created_at))
                                       .where(UserSession.user_id == user_id)).scalar_one(),
    }


def owners(session: Session, organization_id: int) -> list[User]:
    return list(session.execute(
        select(User).where(User.organization_id == organization_id, User.role == "owner").order_by(User.id)
    ).scalars())


# -- organisations -----------------------------------------------------------------------------------


def list_organizations(session: Session, *, search: str | None, status: str | None, tier: str | None,
                       limit: int, offset: int) -> tuple[list[tuple[Organization, int]], int]:
    """Organisations, oldest first, each with how many users it has."""
    conds = []
    if search:
        conds.append(func.lower(Organization.name).like(_contains(search.lower()), escape=ESCAPE))
    if status:
        conds.append(Organization.status == status)
    if tier:
        conds.append(Organization.tier == tier)
    total = session.execute(select(func.count()).select_from(Organization).where(*conds)).scalar_one()
    users = (select(func.count()).select_from(User).where(User.organization_id == Organization.id)
             .correlate(Organization).scalar_subquery())
    rows = session.execute(
        select(Organization, users).where(*conds).order_by(Organization.id).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows], total


def organizations_named(session: Session, name: str) -> list[Organization]:
    return list(session.execute(select(Organization).where(Organization.name == name)).scalars())


def organization_facts(session: Session, organization_id: int) -> dict[str, Any]:
    def count(model, *conds) -> int:
        return session.execute(select(func.count()).select_from(model).where(*conds)).scalar_one()

    return {
        "users": count(User, User.organization_id == organization_id),
        "addresses": count(EmailAddress, EmailAddress.organization_id == organization_id),
        "apiTokens": count(ApiToken, ApiToken.organization_id == organization_id, ApiToken.revoked_at.is_(None)),
    }


# -- sessions and tokens -------------------------------------------------------------------------------


def open_sessions(session: Session, *, organization_id: int | None = None, user_id: int | None = None,
                  ) -> list[Any]:
    """Sessions not yet revoked (expired ones too: revoking them costs nothing and ends the family),
    as rows of ``id, uuid, organization_id, user_id, user_uuid``; everyone's when neither is given."""
    query = (select(UserSession.id, UserSession.uuid, UserSession.organization_id, UserSession.user_id,
                    User.uuid.label("user_uuid"))
             .join(User, User.id == UserSession.user_id).where(UserSession.revoked_at.is_(None)))
    if organization_id is not None:
        query = query.where(UserSession.organization_id == organization_id)
    if user_id is not None:
        query = query.where(UserSession.user_id == user_id)
    return list(session.execute(query.order_by(UserSession.id)).all())


def revoke_sessions(session: Session, session_ids: Sequence[int], now: int, reason: str) -> None:
    """End sessions of any organisation and retire their refresh tokens (the unscoped twin of
    ``store.sessions.revoke``); sessions already ended keep their first reason."""
    for chunk in _chunks(list(session_ids)):
        session.execute(update(UserSession).where(UserSession.id.in_(chunk), UserSession.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason=reason))
        session.execute(update(RefreshToken).where(RefreshToken.session_id.in_(chunk),
                                                   RefreshToken.rotated_at.is_(None))
                        .values(rotated_at=now))


def revoke_tokens(session: Session, organization_id: int, now: int, *, user_id: int | None = None) -> list[str]:
    """Revoke the organisation's live API tokens (only ``user_id``'s when given); returns their hashes."""
    conds = [ApiToken.organization_id == organization_id, ApiToken.revoked_at.is_(None)]
    if user_id is not None:
        conds.append(ApiToken.user_id == user_id)
    hashes = list(session.execute(select(ApiToken.token_hash).where(*conds)).scalars())
    session.execute(update(ApiToken).where(*conds).values(revoked_at=now))
    return hashes


def token_hashes(session: Session, organization_id: int, *, user_id: int | None = None) -> list[str]:
    """Every API token of the organisation (or of one of its users), revoked or not: to drop cached
    decisions about them."""
    conds = [ApiToken.organization_id == organization_id]
    if user_id is not None:
        conds.append(ApiToken.user_id == user_id)
    return list(session.execute(select(ApiToken.token_hash).where(*conds)).scalars())


def token_owner(session: Session, token_uuid: str) -> Organization | None:
    return session.execute(
        select(Organization).join(ApiToken, ApiToken.organization_id == Organization.id)
        .where(ApiToken.uuid == token_uuid)
    ).scalar_one_or_none()


# -- mailbox accounts ----------------------------------------------------------------------------------


def list_accounts(session: Session, *, organization_id: int | None, limit: int, offset: int,
                  ) -> tuple[list[tuple[MailAccount, str, str | None]], int]:
    """Enabled mailbox accounts of every organisation (or one), with their organisation's and user's uuids."""
    conds = [MailAccount.is_enabled.is_(True)]
    if organization_id is not None:
        conds.append(MailAccount.organization_id == organization_id)
    total = session.execute(select(func.count()).select_from(MailAccount).where(*conds)).scalar_one()
    rows = session.execute(
        select(MailAccount, Organization.uuid, User.uuid)
        .join(Organization, Organization.id == MailAccount.organization_id)
        .outerjoin(User, User.id == MailAccount.user_id).where(*conds)
        .order_by(MailAccount.id).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows], total


# -- the numbers ---------------------------------------------------------------------------------------


def totals(session: Session, *, now: int, idle_since: int) -> dict[str, int]:
    """Users, organisations by status, kept messages and bytes, and live sessions, across the platform."""
    users = session.execute(select(func.count()).select_from(User)).scalar_one()
    admins = session.execute(select(func.count()).select_from(User).where(User.is_platform_admin.is_(True))
                             ).scalar_one()
    by_status = dict(session.execute(select(Organization.status, func.count()).group_by(Organization.status)).all())
    messages, storage = session.execute(
        select(func.coalesce(func.sum(Organization.message_count), 0),
               func.coalesce(func.sum(Organization.storage_bytes), 0))).one()
    live = session.execute(
        select(func.count()).select_from(UserSession)
        .where(UserSession.revoked_at.is_(None), UserSession.expires_at > now, UserSession.last_seen_at > idle_since)
    ).scalar_one()
    return {"users": users, "platformAdmins": admins, "organizations": sum(by_status.values()),
            "active": by_status.get("active", 0), "suspended": by_status.get("suspended", 0),
            "messages": int(messages), "storageBytes": int(storage), "activeSessions": live}


def received_since(session: Session, since: int) -> int:
    """Messages stored with ``received_at >= since``, every organisation's; by organisation, so the
    (organization_id, received_at) index answers each part."""
    return session.execute(
        select(func.count()).select_from(Message)
        .where(Message.organization_id.in_(select(Organization.id)), Message.received_at >= since)
    ).scalar_one()
