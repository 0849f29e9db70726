"""Turning accepted raw messages into stored, searchable mail.

The ingest consumer hands batches of jobs to ``IngestService.store``. It never loses a message to bad
input: whatever the parser makes of the bytes (problems are listed in ``parseErrors``) is stored
with the untouched raw original. A redelivered job is recognised by its ingest id and stored once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from logmail.mail import ParsedMessage, make_snippet, parse_message
from logmail.queue.base import Job
from logmail.store import addresses as address_repo
from logmail.store import messages as repo
from logmail.store import usage as usage_repo
from logmail.store.content import ContentStore
from logmail.store.database import Database

log = logging.getLogger("logmail.ingest")


@dataclass(slots=True)
class _Prepared:
    job: Job
    message: dict
    attachments: list[dict]
    recipients: list[str]
    search: dict
    blobs: list[tuple[str, bytes]]


class IngestService:
    def __init__(self, db: Database, content: ContentStore, *, default_organization_id: int) -> None:
        self.db = db
        self.content = content
        self.default_organization_id = default_organization_id
        # Told organisation → (messages, bytes) after each committed batch (quota warnings); never fails a batch.
        self.after_stored: Callable[[dict[int, tuple[int, int]]], None] | None = None
        # Queues message.received (logmail.services.webhooks.WebhookService); None: no events.
        self.webhooks = None

    def store(self, jobs: list[Job]) -> int:
        """Store a batch of accepted messages; returns how many were new. Raises on storage trouble.

        A message admitted for several organisations (platform mode) becomes one stored copy per
        organisation, each showing only that organisation's envelope recipients.
        """
        copies, seen_in_batch = [], set()
        for job in jobs:
            for org, rcpts in self._routes(job):
                # The same stable ingest id twice in one batch (a re-accepted message): store it once.
                if (org, job.payload["ingestId"]) not in seen_in_batch:
                    seen_in_batch.add((org, job.payload["ingestId"]))
                    copies.append((job, org, rcpts))
        with self.db.connect() as conn:
            seen = repo.existing_ingest_ids(conn, [(org, job.payload["ingestId"]) for job, org, _ in copies])
        prepared = []
        parsed_by_job: dict[int, tuple[bytes, ParsedMessage]] = {}
        for job, org, rcpts in copies:
            if (org, job.payload["ingestId"]) in seen:
                continue
            if id(job) not in parsed_by_job:
                raw = self.content.get(job.payload["rawKey"])
                parsed_by_job[id(job)] = (raw, _parse_safely(raw))
            prepared.append(self._prepare(job, org, rcpts, *parsed_by_job[id(job)]))
        if not prepared:
            return 0
        # Content first: a message row must never point at content that is not there yet.
        self.content.put_many(blob for p in prepared for blob in p.blobs)
        with self.db.write_connection() as conn:
            # Another consumer may have stored some of these since we looked (redelivery races).
            again = repo.existing_ingest_ids(conn, [(p.message["organization_id"], p.message["ingest_id"])
                                                    for p in prepared])
            fresh = [p for p in prepared if (p.message["organization_id"], p.message["ingest_id"]) not in again]
            address_ids = self._address_ids(conn, fresh)
            repo.insert_messages(conn, [p.message for p in fresh], [p.attachments for p in fresh],
                                 [[(r, address_ids.get((p.message["organization_id"], r))) for r in p.recipients]
                                  for p in fresh],
                                 [p.search for p in fresh])
            per_org: dict[int, tuple[int, int]] = {}
            for p in fresh:
                count, size = per_org.get(p.message["organization_id"], (0, 0))
                per_org[p.message["organization_id"]] = (count + 1, size + p.message["size"])
            usage_repo.record_stored(conn, per_org, int(time.time() * 1000))
            if self.webhooks is not None and fresh:
                # Delivery rows only (never HTTP here), committed with the messages they announce.
                self.webhooks.messages_received(conn, [p.message for p in fresh])
        for p in fresh:
            log.debug("stored message %s (ingest %s)", p.message["uuid"], p.message["ingest_id"])
        if self.after_stored is not None and fresh:
            try:
                self.after_stored(per_org)
            except Exception:  # the mail is stored; a warning about it must not undo that
                log.warning("after-store hook failed", exc_info=True)
        return len(fresh)

    def _routes(self, job: Job) -> list[tuple[int, list[str]]]:
        routes = job.payload.get("routes")
        if routes:
            return [(int(org), list(rcpts)) for org, rcpts in routes.items()]
        return [(job.payload.get("organizationId") or self.default_organization_id, list(job.payload.get("rcptTo", [])))]

    @staticmethod
    def _address_ids(conn, prepared: list[_Prepared]) -> dict[tuple[int, str], int]:
        """Which of its own addresses each organisation's recipients (envelope, To, Cc) belong to."""
        out: dict[tuple[int, str], int] = {}
        wanted: dict[int, set[str]] = {}
        for p in prepared:
            wanted.setdefault(p.message["organization_id"], set()).update(p.recipients)
        for org, rcpts in wanted.items():
            for address, address_id in address_repo.resolve_many(conn, org, sorted(rcpts)).items():
                out[(org, address)] = address_id
        return out

    def _prepare(self, job: Job, org: int, envelope_to: list[str], raw: bytes, parsed: ParsedMessage) -> _Prepared:
        payload = job.payload
        message_uuid = str(uuid.uuid4())
        body_key = f"body/{message_uuid}"
        body = json.dumps({"headers": parsed.headers, "text": parsed.text, "html": parsed.html},
                          ensure_ascii=False).encode("utf-8", "surrogatepass")
        blobs = [(body_key, body)]
        attachments = []
        for att in parsed.attachments:
            att_uuid = str(uuid.uuid4())
            key = f"att/{att_uuid}"
            blobs.append((key, att.data))
            attachments.append({
                "uuid": att_uuid, "organization_id": org, "position": att.index,
                "filename": _cap(att.filename, 1000), "content_type": _cap(att.content_type, 255) or "application/octet-stream",
                "size": att.size, "content_id": _cap(att.content_id, 998), "inline": att.inline,
                "sha256": att.sha256, "content_key": key,
            })
        from_ = parsed.from_
        rcpt = [a.lower() for a in envelope_to]
        header_rcpts = [a.address.lower() for a in (parsed.to + parsed.cc) if a.address]
        recipients = [_cap(a, 320) for a in dict.fromkeys(rcpt + header_rcpts) if a]
        message = {
            "uuid": message_uuid,
            "organization_id": org,
            "ingest_id": payload["ingestId"],
            "source": payload.get("source", "smtp"),
            "raw_key": payload["rawKey"],
            "body_key": body_key,
            "message_id": _cap(parsed.message_id, 998),
            "in_reply_to": _cap(parsed.in_reply_to, 998),
            "references": parsed.references or None,
            "subject": parsed.subject,
            "from_name": _cap(from_.name, 320) if from_ else "",
            "from_address": _cap(from_.address.lower(), 320) if from_ else "",
            "to": [{"name": a.name, "address": a.address} for a in parsed.to],
            "cc": [{"name": a.name, "address": a.address} for a in parsed.cc],
            "envelope_from": _cap(payload.get("mailFrom", ""), 320),
            "envelope_to": list(envelope_to),
            "date": parsed.date,
            "received_at": payload.get("receivedAt") or int(time.time() * 1000),
            "size": payload.get("size", len(raw)),
            "snippet": parsed.snippet[:400],
            "attachment_count": len(attachments),
            "parse_errors": parsed.parse_errors,
            "is_read": False,
            "account_id": (payload.get("extra") or {}).get("accountId"),
            "folder": _cap((payload.get("extra") or {}).get("folder"), 255),
        }
        addresses = " ".join(
            f"{a.name} {a.address}" for a in ([from_] if from_ else []) + parsed.to + parsed.cc
        ) + " " + " ".join(envelope_to)
        search_row = {"subject": parsed.subject, "addresses": addresses,
                      "body": parsed.text or make_snippet(None, parsed.html, limit=64 * 1024)}
        return _Prepared(job, message, attachments, recipients, search_row, blobs)


def _cap(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    return value[:limit]


def _parse_safely(raw: bytes) -> ParsedMessage:
    """parse_message promises not to raise; if it ever does, the message is still stored raw."""
    try:
        return parse_message(raw)
    except Exception as exc:  # defensive: bad input is data, not a crash
        log.exception("parser failed; storing the message raw only")
        return ParsedMessage(
            message_id=None, subject="", from_=None, to=[], cc=[], reply_to=[], date=None, in_reply_to=None,
            references=[], headers=[], text=None, html=None, attachments=[], snippet="",
            parse_errors=[f"the message could not be parsed ({type(exc).__name__}); only the raw original is available"],
        )
