"""Webhook endpoints and their deliveries: the queries of the API, the ingest hook and the dispatcher.

Every query an API caller reaches names the organisation. The dispatcher's queries do not (it
serves every tenant), and take a delivery only with a conditional UPDATE on its claim, so that of
several daemons exactly one makes a given attempt.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from logmail.store.models_webhooks import Webhook, WebhookDelivery

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, SUCCEEDED, FAILED, CANCELLED)

Executor = Session | Connection  # both run Core statements; the ingest hot path hands a Connection


# -- endpoints ------------------------------------------------------------------------------------


def enabled_event_map(db: Executor) -> dict[int, frozenset[str]]:
    """Organisation → the events its enabled endpoints subscribe to (one small query for all)."""
    out: dict[int, set[str]] = {}
    for org, events in db.execute(select(Webhook.organization_id, Webhook.events).where(Webhook.is_enabled.is_(True))):
        out.setdefault(org, set()).update(events or [])
    return {org: frozenset(events) for org, events in out.items()}


def subscribers(db: Executor, organization_ids: list[int], event: str) -> list[tuple[int, int]]:
    """(webhook id, organisation id) of the enabled endpoints of these organisations taking ``event``."""
    rows = db.execute(select(Webhook.id, Webhook.organization_id, Webhook.events)
                      .where(Webhook.organization_id.in_(organization_ids), Webhook.is_enabled.is_(True)))
    return [(hook_id, org) for hook_id, org, events in rows if event in (events or [])]


def list_webhooks(session: Session, organization_id: int, *, limit: int, offset: int) -> tuple[list[Webhook], int]:
    cond = Webhook.organization_id == organization_id
    total = session.execute(select(func.count()).select_from(Webhook).where(cond)).scalar_one()
    rows = session.execute(select(Webhook).where(cond).order_by(Webhook.id).limit(limit).offset(offset)).scalars()
    return list(rows), total


def count_webhooks(session: Session, organization_id: int) -> int:
    return session.execute(select(func.count()).select_from(Webhook)
                           .where(Webhook.organization_id == organization_id)).scalar_one()


def get_webhook(session: Session, organization_id: int, uuid: str) -> Webhook | None:
    return session.execute(select(Webhook).where(Webhook.organization_id == organization_id, Webhook.uuid == uuid)
                           ).scalar_one_or_none()


def owner_of(session: Session, kind: str, uuid: str) -> int | None:
    """Which organisation owns a webhook or delivery id: only to notice cross-tenant probes."""
    model = Webhook if kind == "webhook" else WebhookDelivery
    return session.execute(select(model.organization_id).where(model.uuid == uuid)).scalar_one_or_none()


def cancel_pending(db: Executor, webhook_id: int, reason: str, now: int) -> int:
    """Cancel the endpoint's pending deliveries. One in flight keeps its claim and records its outcome; if
    that is a retry, the next claim finds the endpoint disabled and cancels it then."""
    return db.execute(update(WebhookDelivery)
                      .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == PENDING,
                             or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until <= now))
                      .values(status=CANCELLED, last_error=reason[:1000], updated_at=now)).rowcount


# -- deliveries -----------------------------------------------------------------------------------


def insert_deliveries(db: Executor, rows: list[dict[str, Any]]) -> None:
    if rows:
        db.execute(insert(WebhookDelivery.__table__), rows)


def list_deliveries(session: Session, webhook_id: int, *, status: str | None, limit: int,
                    offset: int) -> tuple[list[WebhookDelivery], int]:
    conds = [WebhookDelivery.webhook_id == webhook_id]
    if status is not None:
        conds.append(WebhookDelivery.status == status)
    total = session.execute(select(func.count()).select_from(WebhookDelivery).where(*conds)).scalar_one()
    rows = session.execute(select(WebhookDelivery).where(*conds)
                           .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                           .limit(limit).offset(offset)).scalars()
    return list(rows), total


def get_delivery(session: Session, webhook_id: int, uuid: str) -> WebhookDelivery | None:
    return session.execute(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id,
                                                         WebhookDelivery.uuid == uuid)).scalar_one_or_none()


def _claimable(now: int):
    return (WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until <= now))


def due(db: Executor, now: int, limit: int) -> list[tuple[int, int]]:
    """(delivery id, webhook id) of up to ``limit`` deliveries due and claimed by nobody, oldest due first."""
    rows = db.execute(select(WebhookDelivery.id, WebhookDelivery.webhook_id).where(*_claimable(now))
                      .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    return [(d, w) for d, w in rows]


def claim(db: Executor, delivery_id: int, owner: str, now: int, until: int) -> bool:
    """Take one due delivery for ``owner`` until ``until``; False when another daemon was first."""
    return db.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, *_claimable(now))
                      .values(claimed_by=owner, claimed_until=until)).rowcount == 1


def release(db: Executor, delivery_id: int, owner: str, until: int) -> bool:
    """Give a claim back unused (shutting down before the attempt started)."""
    return db.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                    WebhookDelivery.claimed_by == owner,
                                                    WebhookDelivery.claimed_until == until)
                      .values(claimed_by=None, claimed_until=None)).rowcount == 1


def claimed(session: Session, delivery_id: int, owner: str, until: int) -> WebhookDelivery | None:
    """The delivery, if this owner's claim still holds (else another daemon has it now)."""
    return session.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                         WebhookDelivery.claimed_by == owner,
                                                         WebhookDelivery.claimed_until == until)
                           ).scalar_one_or_none()


def old_finished(db: Executor, cutoff: int, limit: int) -> list[int]:
    """Ids of finished deliveries created before ``cutoff`` (pending ones are kept until they end)."""
    rows = db.execute(select(WebhookDelivery.id).where(WebhookDelivery.created_at < cutoff,
                                                       WebhookDelivery.status != PENDING)
                      .order_by(WebhookDelivery.created_at).limit(limit))
    return [r for (r,) in rows]


def delete_deliveries(db: Executor, ids: list[int]) -> int:
    if not ids:
        return 0
    return db.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids))).rowcount


def all_secrets(session: Session, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, uuid, secret_encrypted) of every endpoint, by id (key rotation)."""
    return [tuple(r) for r in session.execute(
        select(Webhook.id, Webhook.uuid, Webhook.secret_encrypted)
        .where(Webhook.id > after_id).order_by(Webhook.id).limit(limit)).all()]


def set_secret(session: Session, webhook_id: int, old: str, new: str) -> bool:
    return session.execute(update(Webhook).where(Webhook.id == webhook_id, Webhook.secret_encrypted == old)
                           .values(secret_encrypted=new)).rowcount == 1
