"""Reading and deleting stored mail, always on behalf of one organisation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from logmail.errors import NotFoundError
from logmail.services.audit import MESSAGE_DELETED, AuditLog
from logmail.services.principal import Principal
from logmail.services.security_events import SecurityEvents
from logmail.store import messages as repo
from logmail.store.content import ContentStore
from logmail.store.database import Database

log = logging.getLogger("logmail.messages")


@dataclass(slots=True)
class Download:
    data: bytes
    content_type: str
    filename: str


def _address(name: str, address: str) -> dict[str, str]:
    return {"name": name, "address": address}


def summary_json(row: Any) -> dict[str, Any]:
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
    }


class MessageService:
    def __init__(self, db: Database, content: ContentStore, *, audit: AuditLog | None = None,
                 events: SecurityEvents | None = None) -> None:
        self.db = db
        self.content = content
        self.audit = audit
        self.events = events

    def _not_found(self, who: Principal, kind: str, public_id: str) -> NotFoundError:
        """404; recorded as a cross-tenant probe when the id is another organisation's."""
        if self.events is None:
            return NotFoundError(f"{kind} not found")
        return self.events.not_found(who, kind, public_id, f"{kind} not found")

    def list(self, who: Principal, flt: repo.MessageFilter, *, limit: int, offset: int, cursor: int | None):
        with self.db.read() as session:
            page = repo.list_messages(session, who.organization_id, flt, limit=limit, offset=offset, before_id=cursor)
        return [summary_json(r) for r in page.rows], page.total, page.next_cursor

    def get(self, who: Principal, message_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
            atts = repo.get_attachments(session, who.organization_id, msg.id) if msg is not None else []
        if msg is None:
            raise self._not_found(who, "message", message_uuid)
        body = {"headers": [], "text": None, "html": None}
        if msg.body_key:
            body = json.loads(self.content.get(msg.body_key))
        return {
            **summary_json(msg),
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

    def delete(self, who: Principal, message_uuid: str) -> None:
        keys: list[str] = []
        with self.db.write() as session:
            msg = repo.get_message(session, who.organization_id, message_uuid)
            if msg is not None:
                keys = repo.delete_message(session, who.organization_id, msg)
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
