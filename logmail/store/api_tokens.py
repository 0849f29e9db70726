"""API tokens of an organisation (their authentication by hash lives in services/tokens.py)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from logmail.store.models import ApiToken, User


def list_tokens(session: Session, organization_id: int, *, user_id: int | None, limit: int, offset: int,
                ) -> tuple[list[tuple[ApiToken, str | None]], int]:
    """Tokens not revoked, newest first, with their creator's uuid; only ``user_id``'s when given."""
    conds = [ApiToken.organization_id == organization_id, ApiToken.revoked_at.is_(None)]
    if user_id is not None:
        conds.append(ApiToken.user_id == user_id)
    total = session.execute(select(func.count()).select_from(ApiToken).where(*conds)).scalar_one()
    rows = session.execute(
        select(ApiToken, User.uuid).outerjoin(User, User.id == ApiToken.user_id).where(*conds)
        .order_by(ApiToken.id.desc()).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows], total


def get(session: Session, organization_id: int, token_uuid: str) -> ApiToken | None:
    return session.execute(
        select(ApiToken).where(ApiToken.organization_id == organization_id, ApiToken.uuid == token_uuid)
    ).scalar_one_or_none()


def hashes_for_user(session: Session, organization_id: int, user_id: int) -> list[str]:
    return list(session.execute(
        select(ApiToken.token_hash).where(ApiToken.organization_id == organization_id, ApiToken.user_id == user_id)
    ).scalars())
