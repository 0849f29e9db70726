"""Which organisation owns a public id: used only to *notice* cross-tenant requests, never to serve them.

When a caller asks for an object its organisation does not have, the answer is 404 either way; these
lookups tell the security trail whether the id belongs to another tenant (a probe worth recording)
or to nobody. They return an organisation key and nothing of the object.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from logmail.store.models import ApiToken, Attachment, Message, User, UserSession

_KINDS = {
    "message": Message,
    "attachment": Attachment,
    "token": ApiToken,
    "session": UserSession,
    "user": User,
}


def owner_of(session: Session, kind: str, public_id: str) -> int | None:
    model = _KINDS[kind]
    return session.execute(select(model.organization_id).where(model.uuid == public_id)).scalar_one_or_none()
