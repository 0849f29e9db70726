"""Mailbox accounts: every query names the organisation; listings also name the owner (a user, or
None for the organisation's own accounts)."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from logmail.store.models import MailAccount, MailAccountFolder


def _owner(user_id: int | None):
    return MailAccount.user_id.is_(None) if user_id is None else MailAccount.user_id == user_id


def list_page(session: Session, organization_id: int, user_id: int | None, *, limit: int,
              offset: int) -> tuple[list[MailAccount], int]:
    conds = (MailAccount.organization_id == organization_id, _owner(user_id), MailAccount.is_enabled.is_(True))
    total = session.execute(select(func.count()).select_from(MailAccount).where(*conds)).scalar_one()
    rows = session.execute(select(MailAccount).where(*conds).order_by(MailAccount.id).limit(limit).offset(offset)
                           ).scalars().all()
    return list(rows), total


def by_uuid(session: Session, uuid: str) -> MailAccount | None:
    """Any organisation's account: the caller decides whether it may see it (and says 403 if not)."""
    return session.execute(select(MailAccount).where(MailAccount.uuid == uuid)).scalar_one_or_none()


def email_taken(session: Session, organization_id: int, user_id: int | None, email: str,
                except_id: int | None = None) -> bool:
    query = select(MailAccount.id).where(MailAccount.organization_id == organization_id, _owner(user_id),
                                         MailAccount.is_enabled.is_(True),
                                         func.lower(MailAccount.email_address) == email.lower())
    if except_id is not None:
        query = query.where(MailAccount.id != except_id)
    return session.execute(query.limit(1)).first() is not None


def forget_progress(session: Session, account_id: int) -> None:
    """A different mailbox (host, user or protocol changed): UIDs start again. The seen set stays:
    its keys (Message-ID and size, or UIDLs) still recognise mail already imported, so a renamed
    host of the same mailbox imports nothing twice."""
    session.execute(delete(MailAccountFolder).where(MailAccountFolder.account_id == account_id))


def all_encrypted(session: Session, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, uuid, password_encrypted) of every account, deleted ones included, by id."""
    return [tuple(r) for r in session.execute(
        select(MailAccount.id, MailAccount.uuid, MailAccount.password_encrypted)
        .where(MailAccount.id > after_id).order_by(MailAccount.id).limit(limit)
    ).all()]


def set_encrypted(session: Session, account_id: int, old: str, new: str) -> bool:
    """Replace the ciphertext only if nobody changed it meanwhile (a PUT with a new password wins)."""
    result = session.execute(update(MailAccount).where(MailAccount.id == account_id,
                                                       MailAccount.password_encrypted == old)
                             .values(password_encrypted=new))
    return result.rowcount == 1
