"""Login sessions and their refresh tokens.

A refresh token is found by its hash alone (the hash *is* the credential, like an API token's);
every other function is scoped to an organisation and, where it matters, to a user.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from logmail.store.models import RefreshToken, UserSession


def refresh_token_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    return session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).scalar_one_or_none()


def lock_session(session: Session, organization_id: int, session_id: int) -> UserSession | None:
    """The session row, locked for this transaction on MySQL, so two refreshes of one family queue up."""
    return session.execute(
        select(UserSession).where(UserSession.organization_id == organization_id, UserSession.id == session_id)
        .with_for_update()
    ).scalar_one_or_none()


def current_refresh_token(session: Session, organization_id: int, session_id: int) -> RefreshToken | None:
    return session.execute(
        select(RefreshToken).where(RefreshToken.organization_id == organization_id,
                                   RefreshToken.session_id == session_id, RefreshToken.rotated_at.is_(None))
        .order_by(RefreshToken.id.desc()).limit(1)
    ).scalar_one_or_none()


def get(session: Session, organization_id: int, session_uuid: str) -> UserSession | None:
    return session.execute(
        select(UserSession).where(UserSession.organization_id == organization_id, UserSession.uuid == session_uuid)
    ).scalar_one_or_none()


def active_for_user(session: Session, organization_id: int, user_id: int, now: int) -> list[UserSession]:
    return list(session.execute(
        select(UserSession).where(UserSession.organization_id == organization_id, UserSession.user_id == user_id,
                                  UserSession.revoked_at.is_(None), UserSession.expires_at > now)
        .order_by(UserSession.last_seen_at.desc())
    ).scalars())


def revoke(session: Session, organization_id: int, session_ids: list[int], now: int, reason: str) -> None:
    """End sessions and retire their refresh tokens; already-ended sessions keep their first reason."""
    if not session_ids:
        return
    session.execute(
        update(UserSession)
        .where(UserSession.organization_id == organization_id, UserSession.id.in_(session_ids),
               UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.organization_id == organization_id, RefreshToken.session_id.in_(session_ids),
               RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
    )


def open_for_user(session: Session, organization_id: int, user_id: int) -> list[UserSession]:
    """Every session of the user not yet revoked (expired ones included), for logout-all."""
    return list(session.execute(
        select(UserSession).where(UserSession.organization_id == organization_id, UserSession.user_id == user_id,
                                  UserSession.revoked_at.is_(None))
    ).scalars())
