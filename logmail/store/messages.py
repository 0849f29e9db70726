"""The message repository: every function takes the organisation it works for.

There is deliberately no way here to read or change a message without naming its organisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session

from logmail.store import search, usage
from logmail.store.models import Attachment, Message, MessageRecipient, MessageTag
from logmail.store.query_conditions import query_conditions, text_expression
from logmail.errors import BadRequestError
from logmail.mail.query_language import Query, QuerySyntaxError, parse_query


@dataclass(slots=True)
class MessageFilter:
    """What to list: the query parameters of ``GET /messages``; ``q`` is in the search language
    of :mod:`logmail.mail.query_language`, refused (BadRequestError) when the filter is made."""

    to: str | None = None
    from_: str | None = None
    since: int | None = None
    until: int | None = None
    q: str | None = None
    address_id: int | None = None  # mail received by one of the organisation's addresses

    def __post_init__(self) -> None:
        self.query()

    def query(self) -> Query:
        try:
            return parse_query(self.q or "")
        except QuerySyntaxError as exc:
            raise BadRequestError(str(exc)) from None

    def only_text(self) -> bool:
        """No filter but ``q``."""
        return not (self.to or self.from_ or self.since is not None or self.until is not None
                    or self.address_id is not None)

    def conditions(self, organization_id: int, dialect: str) -> list:
        """Conditions on ``Message`` selecting exactly this organisation's messages that match."""
        conds = [Message.organization_id == organization_id]
        if self.from_:
            conds.append(Message.from_address == self.from_.lower())
        if self.to:
            conds.append(
                Message.id.in_(
                    select(MessageRecipient.message_id).where(
                        MessageRecipient.organization_id == organization_id,
                        MessageRecipient.address == self.to.lower(),
                    )
                )
            )
        if self.address_id is not None:
            conds.append(
                Message.id.in_(
                    select(MessageRecipient.message_id).where(
                        MessageRecipient.organization_id == organization_id,
                        MessageRecipient.address_id == self.address_id,
                    )
                )
            )
        if self.since is not None:
            conds.append(Message.received_at >= self.since)
        if self.until is not None:
            conds.append(Message.received_at < self.until)
        if self.q:
            conds += query_conditions(self.query(), organization_id, dialect)
        return conds


@dataclass(slots=True)
class Page:
    rows: list
    total: int
    next_cursor: int | None = None
    extra: dict = field(default_factory=dict)


LIST_COLUMNS = (
    Message.id, Message.uuid, Message.message_id, Message.subject, Message.from_name, Message.from_address,
    Message.to, Message.cc, Message.date, Message.received_at, Message.size, Message.snippet,
    Message.attachment_count, Message.is_read, Message.envelope_from, Message.envelope_to, Message.source,
    Message.parse_errors,
)


def list_messages(session: Session, organization_id: int, flt: MessageFilter, *, limit: int, offset: int = 0,
                  before_id: int | None = None) -> Page:
    """Newest stored first. ``before_id`` is the keyset cursor: stable while mail keeps arriving."""
    dialect = session.bind.dialect.name
    # Required words and phrases and nothing else: the index answers both the page and the total.
    expr = text_expression(flt.query(), dialect) if flt.q and flt.only_text() else None
    if expr is not None:
        return _search_page(session, organization_id, expr, limit=limit, offset=offset, before_id=before_id)
    conds = flt.conditions(organization_id, dialect)
    total = session.execute(select(func.count()).select_from(Message).where(*conds)).scalar_one()
    stmt = select(*LIST_COLUMNS).where(*conds)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    rows = session.execute(stmt.order_by(Message.id.desc()).offset(offset).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows=rows, total=total, next_cursor=rows[-1].id if more and rows else None)


def _search_page(session: Session, organization_id: int, expr: str, *, limit: int, offset: int,
                 before_id: int | None) -> Page:
    """A text-only search, answered by the index for both the page and the total."""
    conn = session.connection()
    total = search.count(conn, organization_id, expr)
    ids = search.page_ids(conn, organization_id, expr, before_id=before_id, offset=offset, limit=limit + 1)
    rows = []
    if ids:
        rows = session.execute(
            select(*LIST_COLUMNS).where(Message.organization_id == organization_id, Message.id.in_(ids))
            .order_by(Message.id.desc())
        ).all()
    more = len(ids) > limit
    rows = rows[:limit]
    return Page(rows=rows, total=total, next_cursor=rows[-1].id if more and rows else None)


def get_message(session: Session, organization_id: int, uuid: str) -> Message | None:
    return session.execute(
        select(Message).where(Message.organization_id == organization_id, Message.uuid == uuid)
    ).scalar_one_or_none()


def get_attachments(session: Session, organization_id: int, message_pk: int) -> list[Attachment]:
    return list(
        session.execute(
            select(Attachment)
            .where(Attachment.organization_id == organization_id, Attachment.message_id == message_pk)
            .order_by(Attachment.position)
        ).scalars()
    )


def get_attachment(session: Session, organization_id: int, message_uuid: str, attachment_uuid: str) -> Attachment | None:
    return session.execute(
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(
            Attachment.organization_id == organization_id,
            Message.organization_id == organization_id,
            Message.uuid == message_uuid,
            Attachment.uuid == attachment_uuid,
        )
    ).scalar_one_or_none()


def delete_message(session: Session, organization_id: int, message: Message) -> list[str]:
    """Delete one message's rows; returns the content keys the caller must delete after commit."""
    return delete_messages(session, organization_id, [message.id])


def delete_messages(session: Session, organization_id: int, message_pks: list[int]) -> list[str]:
    """Delete messages of one organisation; returns the content keys to delete after the commit."""
    if not message_pks:
        return []
    rows = session.execute(
        select(Message.id, Message.raw_key, Message.body_key, Message.size)
        .where(Message.organization_id == organization_id, Message.id.in_(message_pks))
    ).all()
    pks = [r.id for r in rows]  # only this organisation's: ids of others are silently not touched
    if not pks:
        return []
    # A message admitted for several organisations is one raw blob shared by each copy: it goes only
    # with the last copy (the check runs in this transaction, so two deletes cannot both keep it).
    raw_keys = {r.raw_key for r in rows}
    still_used = set(session.execute(
        select(Message.raw_key).where(Message.raw_key.in_(raw_keys), Message.id.not_in(pks))
    ).scalars()) if raw_keys else set()
    keys = [k for k in raw_keys if k not in still_used] + [r.body_key for r in rows if r.body_key]
    keys += session.execute(
        select(Attachment.content_key).where(Attachment.organization_id == organization_id,
                                             Attachment.message_id.in_(pks))
    ).scalars().all()
    conn = session.connection()
    search.unindex(conn, pks)
    conn.execute(delete(Attachment).where(Attachment.message_id.in_(pks)))
    conn.execute(delete(MessageRecipient).where(MessageRecipient.message_id.in_(pks)))
    conn.execute(delete(MessageTag).where(MessageTag.message_id.in_(pks)))
    conn.execute(delete(Message).where(Message.organization_id == organization_id, Message.id.in_(pks)))
    # In the same transaction: the organisation's storage can never disagree with what it keeps.
    usage.record_deleted(conn, organization_id, len(pks), sum(r.size for r in rows), int(time.time() * 1000))
    return keys


def received_before(session: Session, organization_id: int, cutoff_ms: int, limit: int) -> list[int]:
    """Ids of this organisation's messages received before ``cutoff_ms``, oldest first."""
    return list(session.execute(
        select(Message.id)
        .where(Message.organization_id == organization_id, Message.received_at < cutoff_ms)
        .order_by(Message.received_at)
        .limit(limit)
    ).scalars())


# -- the ingest side: bulk writes for a batch of parsed messages ------------------------------------


def existing_ingest_ids(conn: Connection, pairs: list[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (organisation, ingest id) pairs are already stored: redelivered jobs are skipped."""
    if not pairs:
        return set()
    found = set()
    by_org: dict[int, list[str]] = {}
    for org, ingest_id in pairs:
        by_org.setdefault(org, []).append(ingest_id)
    for org, ids in by_org.items():
        rows = conn.execute(
            select(Message.ingest_id).where(Message.organization_id == org, Message.ingest_id.in_(ids))
        ).scalars()
        found.update((org, i) for i in rows)
    return found


def insert_messages(conn: Connection, messages: list[dict], attachments: list[list[dict]],
                    recipients: list[list[tuple[str, int | None]]], search_rows: list[dict]) -> list[int]:
    """Insert a batch; the i-th message owns attachments[i], recipients[i] and search_rows[i].

    A recipient is (address, the organisation's EmailAddress id it was delivered to, or None).
    """
    if not messages:
        return []
    conn.execute(insert(Message), messages)
    ids = dict(
        conn.execute(
            select(Message.uuid, Message.id).where(Message.uuid.in_([m["uuid"] for m in messages]))
        ).all()
    )
    message_ids = [ids[m["uuid"]] for m in messages]
    att_rows, rcpt_rows, index_rows = [], [], []
    for pk, msg, atts, rcpts, srow in zip(message_ids, messages, attachments, recipients, search_rows):
        att_rows.extend({**a, "message_id": pk} for a in atts)
        rcpt_rows.extend({"message_id": pk, "address": r, "address_id": address_id,
                          "organization_id": msg["organization_id"]} for r, address_id in rcpts)
        index_rows.append({**srow, "id": pk, "organization_id": msg["organization_id"]})
    if att_rows:
        conn.execute(insert(Attachment), att_rows)
    if rcpt_rows:
        conn.execute(insert(MessageRecipient), rcpt_rows)
    search.index_rows(conn, index_rows)
    return message_ids


__all__ = [
    "MessageFilter", "Page", "list_messages", "get_message", "get_attachments", "get_attachment",
    "delete_message", "delete_messages", "received_before", "existing_ingest_ids", "insert_messages",
]
