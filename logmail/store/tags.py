"""Tags on messages: per-organisation labels, read by ``tag:`` searches through their own index."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from logmail.store.models import MessageTag


def for_messages(session: Session, organization_id: int, message_pks: list[int]) -> dict[int, list[str]]:
    if not message_pks:
        return {}
    out: dict[int, list[str]] = {}
    rows = session.execute(
        select(MessageTag.message_id, MessageTag.tag)
        .where(MessageTag.organization_id == organization_id, MessageTag.message_id.in_(message_pks))
        .order_by(MessageTag.tag)
    ).all()
    for message_id, tag in rows:
        out.setdefault(message_id, []).append(tag)
    return out


def change(session: Session, organization_id: int, message_pk: int, *, add: list[str], remove: list[str]) -> None:
    if remove:
        session.execute(delete(MessageTag).where(MessageTag.organization_id == organization_id,
                                                 MessageTag.message_id == message_pk, MessageTag.tag.in_(remove)))
    if add:
        have = set(for_messages(session, organization_id, [message_pk]).get(message_pk, []))
        new = [t for t in add if t not in have]
        if new:
            session.execute(insert(MessageTag), [{"message_id": message_pk, "tag": t,
                                                  "organization_id": organization_id} for t in new])
