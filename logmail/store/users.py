"""Users and organisations.

Looking a user up by email is the one query here that names no organisation: a login names only an
email, and emails are unique across the installation. Everything else is scoped.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from logmail.store.models import Organization, User


def by_email(session: Session, email: str) -> tuple[User, Organization] | None:
    row = session.execute(
        select(User, Organization).join(Organization, Organization.id == User.organization_id)
        .where(User.email == email)
    ).first()
    return (row[0], row[1]) if row else None


def email_taken(session: Session, email: str) -> bool:
    return session.execute(select(User.id).where(User.email == email)).first() is not None


def add_organization_with_owner(session: Session, *, name: str, tier: str, email: str, password_hash: str,
                                now: int) -> tuple[Organization, User] | None:
    """A new organisation with its first owner (one never exists without one); None when the
    email address already belongs to a user."""
    if email_taken(session, email):
        return None
    org = Organization(name=name, tier=tier, created_at=now)
    session.add(org)
    session.flush()
    owner = User(organization_id=org.id, email=email, password_hash=password_hash, role="owner", created_at=now)
    session.add(owner)
    session.flush()
    return org, owner


def get(session: Session, organization_id: int, user_uuid: str) -> User | None:
    return session.execute(
        select(User).where(User.organization_id == organization_id, User.uuid == user_uuid)
    ).scalar_one_or_none()


def get_by_id(session: Session, organization_id: int, user_id: int) -> User | None:
    return session.execute(
        select(User).where(User.organization_id == organization_id, User.id == user_id)
    ).scalar_one_or_none()


def list_users(session: Session, organization_id: int, *, limit: int, offset: int) -> tuple[list[User], int]:
    total = session.execute(
        select(func.count()).select_from(User).where(User.organization_id == organization_id)
    ).scalar_one()
    rows = session.execute(
        select(User).where(User.organization_id == organization_id).order_by(User.id).offset(offset).limit(limit)
    ).scalars().all()
    return list(rows), total


def count_owners(session: Session, organization_id: int) -> int:
    return session.execute(
        select(func.count()).select_from(User).where(User.organization_id == organization_id, User.role == "owner")
    ).scalar_one()


def organization(session: Session, organization_id: int) -> Organization | None:
    return session.get(Organization, organization_id)


def organization_by_uuid(session: Session, organization_uuid: str) -> Organization | None:
    return session.execute(select(Organization).where(Organization.uuid == organization_uuid)).scalar_one_or_none()


def with_organization(session: Session, organization_uuid: str, user_uuid: str) -> tuple[User, Organization] | None:
    """The user ``user_uuid`` if it belongs to the organisation ``organization_uuid`` (trusted headers)."""
    row = session.execute(
        select(User, Organization).join(Organization, Organization.id == User.organization_id)
        .where(Organization.uuid == organization_uuid, User.uuid == user_uuid)
    ).first()
    return (row[0], row[1]) if row else None
