"""Reading and deleting stored mail, always on behalf of one organisation."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from logmail.errors import BadRequestError, NotFoundError
from logmail.services.audit import MESSAGE_DELETED, MESSAGES_DELETED, AuditLog
from logmail.services.principal import Principal
from logmail.services.security_events import SecurityEvents
from logmail.store import messages as repo
from logmail.store import tags as tags_repo
from logmail.store.content import ContentStore
from logmail.store.database import Database
from logmail.store.models import Message

log = logging.getLogger("logmail.messages")


@dataclass(slots=True)
class Download:
    data: bytes
    content_type: str
    filename: str


def _address(name: str, address: str) -> dict[str, str]:
    return {"name": name, "address": address}


def summary_json(row: Any, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": row.uuid,
        "messageId": row.message_id,
        "subject": row.subject,
        "from": _address(row.from_name, row.from_address) if row.from_address or row.from_name else None,
        "to": row.to,
        "cc": row.cc,
        "date": row.date,
        "receivedAt": row.received_at,
        "size": row.size,
        "snippet": row.snippet,
        "attachmentCount": row.attachment_count,
        "isRead": row.is_read,
        "source": row.source,
        "envelope": {"mailFrom": row.envelope_from, "rcptTo": row.envelope_to},
        "hasParseErrors": bool(row.parse_errors),
        "tags": tags or [],
    }


@dataclass(frozen=True, slots=True)
class IdScan:
    """Internal message ids across every organisation, and nothing else: what the watcher of new mail
    (:mod:`logmail.api.live`) needs to notice mail stored by any process on the same database."""

    newest: int                      # the greatest id stored (0: none)
    after: list[tuple[int, int]]     # (id, organisation) of ids greater than the one asked about, ascending
    present: dict[int, int]          # id -> organisation, of the ids asked about that exist by now


MAX_TAGS = 50
_TAG = re.compile(r"^[\w.:/-]{1,64}$", re.UNICODE)
DELETE_BATCH = 500


def check_tags(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadRequestError(f"{name} must be a list of strings")
    tags = list(dict.fromkeys(t.strip().lower() for t in value))
    for tag in tags:
        if not _TAG.match(tag):
            raise BadRequestError(f"{name}: {tag[:70]!r} is not a tag (1-64 letters, digits, '_', '.', ':', "
                                  "'/' or '-')")
    if len(tags) > MAX_TAGS:
        raise BadRequestError(f"{name}: a message may have at most {MAX_TAGS} tags")
    return tags


class MessageService:
    def __init__(self, db: Database, content: ContentStore, *, audit: AuditLog | None = None,
                 events: SecurityEvents | None = None) -> None:
        self.db = db
        self.content = content
        self.audit = audit
        self.events = events
        # Queues message.deleted (logmail.services.webhooks.WebhookService); None: no events.
        self.webhooks = None

    def _not_found(self, who: Principal, kind: str, public_id: str) -> NotFoundError:
        """404; recorded as a cross-tenant probe when the id is another organisation's."""
        if self.events is None:
            return NotFoundError(f"{kind} not found")
        return self.events.not_found(who, kind, public_id, f"{kind} not found")

    def list(self, who: Principal, flt: repo.MessageFilter, *, limit: int, offset: int, cursor: int | None):
        with self.db.read() as session:
            page = repo.list_messages(session, who.organization_id, flt, limit=limit, offset=offset, before_id=cursor)
            tags = tags_repo.for_messages(session, who.organization_id, [r.id for r in page.rows])
        return [summary_json(r, tags.get(r.id)) for r in page.rows], page.total, page.next_cursor

    # -- the live stream of GET /events -------------------------------------------------------------

    def received_after(self, who: Principal, after_pk: int, *, up_to: int,
                       limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """The organisation's messages with ``after_pk < internal id <= up_to``, oldest first, each as
        (internal id, the summary ``GET /messages`` lists)."""
        with self.db.read() as session:
            rows = session.execute(
                select(*repo.LIST_COLUMNS)
                .where(Message.organization_id == who.organization_id, Message.id > after_pk, Message.id <= up_to)
                .order_by(Message.id).limit(limit)
            ).all()
            tags = tags_repo.for_messages(session, who.organization_id, [r.id for r in rows])
        return [(r.id, summary_json(r, tags.get(r.id))) for r in rows]

    def newest_pk(self, who: Principal, up_to: int) -> int:
        """The organisation's greatest internal message id at or below ``up_to``; 0 when it has none."""
        with self.db.read() as session:
            return session.execute(
                select(func.max(Message.id)).where(Message.organization_id == who.organization_id,
                                                   Message.id <= up_to)
            ).scalar() or 0

    def scan_ids(self, after_pk: int, asked: list[int], limit: int = 1000) -> IdScan:
        """The newest id, up to ``limit`` ids after ``after_pk`` and which of ``asked`` exist, in every
        organisation, each with its organisation's internal id: for the watcher's own use, never
        shown to a tenant."""
        with self.db.read() as session:
            newest = session.execute(select(func.max(Message.id))).scalar() or 0
            after = []
            if newest > after_pk and limit:
                after = [(pk, org) for pk, org in session.execute(
                    select(Message.id, Message.organization_id).where(Message.id > after_pk)
                    .order_by(Message.id).limit(limit))]
            present = {}
            if asked:
                present = dict(session.execute(
                    select(Message.id, Message.organization_id).where(Message.id.in_(asked))).all())
        return IdScan(newest, after, present)

    def get(self, who: Principal, message_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
            atts = repo.get_attachments(session, who.organization_id, msg.id) if msg is not None else []
            tags = tags_repo.for_messages(session, who.organization_id, [msg.id]) if msg is not None else {}
        if msg is None:
            raise self._not_found(who, "message", message_uuid)
        body = {"headers": [], "text": None, "html": None}
        if msg.body_key:
            body = json.loads(self.content.get(msg.body_key))
        return {
            **summary_json(msg, tags.get(msg.id)),
            "inReplyTo": msg.in_reply_to,
            "references": msg.references or [],
            "headers": [{"name": k, "value": v} for k, v in body["headers"]],
            "text": body["text"],
            "html": body["html"],
            "attachments": [
                {"id": a.uuid, "filename": a.filename, "contentType": a.content_type, "size": a.size,
                 "contentId": a.content_id, "inline": a.inline, "sha256": a.sha256}
                for a in atts
            ],
            "parseErrors": msg.parse_errors,
        }

    def raw(self, who: Principal, message_uuid: str) -> Download:
        with self.db.read() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
        if msg is None:
            raise self._not_found(who, "message", message_uuid)
        return Download(self.content.get(msg.raw_key), "message/rfc822", f"{msg.uuid}.eml")

    def attachment(self, who: Principal, message_uuid: str, attachment_uuid: str) -> Download:
        with self.db.read() as session:
            att = repo.get_attachment(session, who.organization_id, message_uuid, attachment_uuid)
            msg = None if att is not None else repo.get_message(session, who.organization_id, message_uuid)
        if att is None:
            if msg is None:
                raise self._not_found(who, "message", message_uuid)
            raise self._not_found(who, "attachment", attachment_uuid)
        name = att.filename or f"attachment-{att.position + 1}"
        return Download(self.content.get(att.content_key), att.content_type, name)

    def update(self, who: Principal, message_uuid: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Flags and tags: ``isRead``, ``tags`` (replace all), ``addTags``, ``removeTags``."""
        with self.db.write() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
            if msg is None:
                missing = True
            else:
                missing = False
                self._apply(session, who, msg, changes)
        if missing:  # recorded outside the write: the probe's event needs a transaction of its own
            raise self._not_found(who, "message", message_uuid)
        return self.get(who, message_uuid)

    def _apply(self, session, who: Principal, msg, changes: dict[str, Any]) -> None:
        if "isRead" in changes:
            msg.is_read = changes["isRead"]
        add, remove = list(changes.get("addTags", [])), list(changes.get("removeTags", []))
        if "tags" in changes:
            have = tags_repo.for_messages(session, who.organization_id, [msg.id]).get(msg.id, [])
            remove += [t for t in have if t not in changes["tags"]]
            add += changes["tags"]
        tags_repo.change(session, who.organization_id, msg.id, add=add, remove=remove)
        session.flush()
        if len(tags_repo.for_messages(session, who.organization_id, [msg.id]).get(msg.id, [])) > MAX_TAGS:
            raise BadRequestError(f"a message may have at most {MAX_TAGS} tags")

    def delete_matching(self, who: Principal, flt: repo.MessageFilter) -> int:
        """Delete every message the filter selects, in batches; one audit entry for the whole."""
        deleted = 0
        while True:
            with self.db.write() as session:
                page = repo.list_messages(session, who.organization_id, flt, limit=DELETE_BATCH, offset=0)
                pks = [r.id for r in page.rows]
                keys = repo.delete_messages(session, who.organization_id, pks)
                if self.webhooks is not None:
                    self.webhooks.messages_deleted(session, who.organization_id, page.rows)
            self._delete_content(keys)
            deleted += len(pks)
            if len(pks) < DELETE_BATCH:
                break
        with self.db.write() as session:
            if self.audit is not None:
                self.audit.add(session, who, MESSAGES_DELETED, target_type="message",
                               details={"count": deleted, "filter": _describe(flt)})
        return deleted

    def _delete_content(self, keys: list[str]) -> None:
        try:
            self.content.delete_many(keys)
        except Exception:
            log.warning("messages deleted, but %d content blobs could not be removed", len(keys))

    def delete(self, who: Principal, message_uuid: str) -> None:
        keys: list[str] = []
        with self.db.write() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
            if msg is not None:
                keys = repo.delete_message(session, who.organization_id, msg)
                if self.webhooks is not None:
                    self.webhooks.messages_deleted(session, who.organization_id, [msg])
                if self.audit is not None:
                    self.audit.add(session, who, MESSAGE_DELETED, target_type="message", target_id=message_uuid,
                                   details={"subject": msg.subject[:200]})
        if msg is None:
            raise self._not_found(who, "message", message_uuid)
        # After the commit: a crash here leaves unreachable blobs, never rows pointing at nothing.
        try:
            self.content.delete_many(keys)
        except Exception:
            log.warning("message %s deleted, but %d content blobs could not be removed", message_uuid, len(keys))


def _describe(flt: repo.MessageFilter) -> dict[str, Any]:
    return {k: v for k, v in (("q", flt.q), ("to", flt.to), ("from", flt.from_), ("since", flt.since),
                              ("until", flt.until)) if v is not None}
