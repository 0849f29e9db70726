"""Webhooks: an organisation's endpoints, the events they take, and the deliveries made to them.

Events are queued, never sent here: :meth:`WebhookService.emit` (and the ingest and delete hooks
that use it) writes one delivery row per subscribed endpoint, inside the caller's transaction when
it passes one, and the dispatcher of the daemon (:mod:`logmail.daemon.webhook_job`) sends them. So
a slow or failing endpoint never slows ingestion. Whether an organisation has any endpoint for an
event is remembered in-process for ``SUBSCRIPTIONS_TTL`` seconds, so the common case (no webhooks)
costs no query at all; a change made here is seen at once by this process and within the TTL by
the others.

The signing secret is shown once, when it is made (creation or rotation), and kept encrypted with
the credential vault (the endpoint's uuid as associated data).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from logmail.config import WebhookSettings
from logmail.errors import ConflictError, ForbiddenError, NotFoundError
from logmail.services.audit import WEBHOOK_CREATED, WEBHOOK_DELETED, WEBHOOK_REPLAYED, WEBHOOK_UPDATED, AuditLog
from logmail.services.credentials import CredentialError, CredentialVault
from logmail.services.principal import Principal
from logmail.services.security_events import CROSS_TENANT_ACCESS, SecurityEvents
from logmail.services.webhook_attempts import WebhookAttempts
from logmail.services.webhook_events import (  # noqa: F401  (the event names, for callers of emit)
    ACCOUNT_SYNC_FAILED,
    EVENTS,
    MESSAGE_DELETED,
    MESSAGE_RECEIVED,
    QUOTA_WARNING,
    TEST_EVENT,
    deleted_data,
    event_body,
    received_data,
)
from logmail.services.webhook_sender import new_secret
from logmail.services.webhook_targets import check_url, resolve
from logmail.store import webhooks as repo
from logmail.store.database import Database
from logmail.store.models import new_uuid
from logmail.store.models_webhooks import Webhook, WebhookDelivery

log = logging.getLogger("logmail.webhooks")

MAX_WEBHOOKS = 20  # per organisation
SUBSCRIPTIONS_TTL = 5.0


def webhook_json(hook: Webhook) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret (only creation and rotation show that)."""
    return {"id": hook.uuid, "url": hook.url, "description": hook.description, "events": list(hook.events or []),
            "isEnabled": hook.is_enabled, "disabledReason": hook.disabled_reason,
            "consecutiveFailures": hook.consecutive_failures, "createdAt": hook.created_at,
            "updatedAt": hook.updated_at}


def delivery_json(d: WebhookDelivery, webhook_uuid: str) -> dict[str, Any]:
    try:
        payload = json.loads(d.payload)
    except ValueError:  # pragma: no cover - we wrote it
        payload = d.payload
    return {"id": d.uuid, "webhookId": webhook_uuid, "event": d.event, "status": d.status, "attempts": d.attempts,
            "nextAttemptAt": d.next_attempt_at if d.status == repo.PENDING else None,
            "lastStatusCode": d.last_status_code, "lastResponse": d.last_response, "lastError": d.last_error,
            "lastDurationMs": d.last_duration_ms, "history": d.history or [], "payload": payload,
            "createdAt": d.created_at, "updatedAt": d.updated_at, "deliveredAt": d.delivered_at}


class WebhookService:
    def __init__(self, db: Database, vault: Callable[[], CredentialVault], settings: WebhookSettings, *,
                 tier_of: Callable[[int], Any], audit: Callable[[], AuditLog | None] = lambda: None,
                 events: Callable[[], SecurityEvents | None] = lambda: None,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        """``vault``, ``audit`` and ``events`` are functions called on first use, since ingest (even in a
        worker process) needs none of them; ``tier_of(org)`` is the organisation's Tier or None;
        ``clock`` (epoch ms) drives the retry schedule and the history's age, and tests move it."""
        self.db = db
        self._vault = vault
        self.settings = settings
        self._tier_of = tier_of
        self._audit_log = audit
        self._events = events
        self.clock = clock
        self.attempts = WebhookAttempts(db, vault, tier_of, settings, lambda: self.clock())
        self.on_queued: Callable[[], None] | None = None  # the dispatcher's wake-up, when in this process
        self._lock = threading.Lock()
        self._subscriptions: dict[int, frozenset[str]] = {}
        self._subscriptions_until = 0.0

    # -- events -------------------------------------------------------------------------------

    def emit(self, organization_id: int, event: str, data: dict[str, Any], *, db: Any = None) -> int:
        """Queue ``event`` for every enabled endpoint of the organisation that subscribes to it.

        ``db``: a Session or Connection of the caller's write transaction, so the deliveries commit
        (or not) with the change they report; without it they are written in a transaction of their
        own. Returns how many deliveries were queued; costs nothing when the organisation has no
        endpoint for the event. Never sends anything itself.
        """
        return self.emit_many(event, [(organization_id, data)], db=db)

    def emit_many(self, event: str, items: Iterable[tuple[int, dict[str, Any]]], *, db: Any = None) -> int:
        """:meth:`emit` for many (organisation, data) pairs of one event, in one statement."""
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; add it to EVENTS first")
        items = list(items)
        if not items:
            return 0
        if db is not None:
            return self._queue(db, event, items)
        if not self._maybe_subscribed(None, event, {org for org, _ in items}):
            return 0
        with self.db.write_connection() as conn:
            return self._queue(conn, event, items)

    def _queue(self, db: Any, event: str, items: list[tuple[int, dict[str, Any]]]) -> int:
        orgs = self._maybe_subscribed(db, event, {org for org, _ in items})
        if not orgs:
            return 0
        hooks: dict[int, list[int]] = {}
        for hook_id, org in repo.subscribers(db, sorted(orgs), event):
            hooks.setdefault(org, []).append(hook_id)
        now = self.clock()
        rows = []
        for org, data in items:
            if org not in hooks:
                continue
            body = event_body(event, data, now)
            rows += [_delivery_row(hook_id, org, event, body, now) for hook_id in hooks[org]]
        repo.insert_deliveries(db, rows)
        if rows and self.on_queued is not None:
            self.on_queued()  # before the commit: the dispatcher looks again shortly after a wake-up
        return len(rows)

    def messages_received(self, conn: Any, messages: list[dict[str, Any]]) -> int:
        """The ingest hook: ``message.received`` for freshly stored message rows, in ingest's transaction."""
        return self.emit_many(MESSAGE_RECEIVED, ((m["organization_id"], received_data(m)) for m in messages), db=conn)

    def messages_deleted(self, session: Any, organization_id: int, messages: Iterable[Any]) -> int:
        """``message.deleted`` for Message rows deleted in ``session``'s transaction."""
        return self.emit_many(MESSAGE_DELETED, ((organization_id, deleted_data(m)) for m in messages), db=session)

    def _maybe_subscribed(self, db: Any, event: str, orgs: set[int]) -> set[int]:
        """Those of ``orgs`` that (as of at most SUBSCRIPTIONS_TTL ago) have an endpoint for ``event``."""
        now = time.monotonic()
        with self._lock:
            fresh = now < self._subscriptions_until
            subscriptions = self._subscriptions
        if not fresh:
            if db is None:
                with self.db.connect() as conn:
                    subscriptions = repo.enabled_event_map(conn)
            else:
                subscriptions = repo.enabled_event_map(db)
            with self._lock:
                self._subscriptions, self._subscriptions_until = subscriptions, now + SUBSCRIPTIONS_TTL
        return {org for org in orgs if event in subscriptions.get(org, ())}

    def forget_subscriptions(self) -> None:
        with self._lock:
            self._subscriptions_until = 0.0

    # -- endpoints ----------------------------------------------------------------------------

    def _check_tier(self, who: Principal) -> None:
        tier = self._tier_of(who.organization_id)
        if tier is None or not tier.has("webhooks"):
            raise ForbiddenError("webhooks are not part of your organisation's plan; upgrade to a tier that "
                                 "includes them")

    def _check_target(self, url: str) -> None:
        target = check_url(url)
        if not self.settings.allow_private:
            resolve(target, allow_private=False)

    def list(self, who: Principal, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_webhooks(session, who.organization_id, limit=limit, offset=offset)
            return [webhook_json(r) for r in rows], total

    def get(self, who: Principal, webhook_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                return webhook_json(hook)
        raise self._not_found(who, "webhook", webhook_uuid)

    def create(self, who: Principal, url: str, events: list[str], description: str = "") -> dict[str, Any]:
        """A new endpoint; the answer is the only place its signing secret is ever shown."""
        self._check_tier(who)
        self._check_target(url)
        secret = new_secret()
        now = self.clock()
        with self.db.write() as session:
            if repo.count_webhooks(session, who.organization_id) >= MAX_WEBHOOKS:
                raise ConflictError(f"an organisation may have at most {MAX_WEBHOOKS} webhooks")
            hook = Webhook(uuid=new_uuid(), organization_id=who.organization_id, url=url, description=description,
                           events=list(events), is_enabled=True, consecutive_failures=0, created_at=now,
                           updated_at=now)
            hook.secret_encrypted = self._vault().encrypt(hook.uuid, secret)
            session.add(hook)
            session.flush()
            self._audit(session, who, WEBHOOK_CREATED, hook, {"host": urlsplit(url).hostname, "events": list(events)})
            out = {**webhook_json(hook), "secret": secret}
        self.forget_subscriptions()
        return out

    def update(self, who: Principal, webhook_uuid: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ``url``, ``description``, ``events`` or ``isEnabled``. Disabling cancels what is pending;
        enabling clears the reason it was disabled."""
        if "url" in changes:
            self._check_target(changes["url"])
        if changes.get("isEnabled") is True:
            self._check_tier(who)
        now = self.clock()
        with self.db.write() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                for key, column in (("url", "url"), ("description", "description"), ("events", "events")):
                    if key in changes:
                        setattr(hook, column, list(changes[key]) if key == "events" else changes[key])
                if "isEnabled" in changes and changes["isEnabled"] != hook.is_enabled:
                    hook.is_enabled = changes["isEnabled"]
                    if hook.is_enabled:
                        hook.disabled_reason, hook.consecutive_failures = None, 0
                    else:
                        hook.disabled_reason = "disabled by a user"
                        repo.cancel_pending(session, hook.id, "cancelled: the endpoint was disabled", now)
                hook.updated_at = now
                self._audit(session, who, WEBHOOK_UPDATED, hook, {"fields": sorted(changes)})
                out = webhook_json(hook)
        if hook is None:
            raise self._not_found(who, "webhook", webhook_uuid)
        self.forget_subscriptions()
        return out

    def rotate_secret(self, who: Principal, webhook_uuid: str) -> dict[str, Any]:
        """A new signing secret, shown once; the old one stops signing at once."""
        secret = new_secret()
        with self.db.write() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                hook.secret_encrypted = self._vault().encrypt(hook.uuid, secret)
                hook.updated_at = self.clock()
                self._audit(session, who, WEBHOOK_UPDATED, hook, {"fields": ["secret"]})
                return {**webhook_json(hook), "secret": secret}
        raise self._not_found(who, "webhook", webhook_uuid)

    def delete(self, who: Principal, webhook_uuid: str) -> None:
        """The endpoint and its delivery history (pending deliveries are never sent)."""
        with self.db.write() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                self._audit(session, who, WEBHOOK_DELETED, hook, {"host": urlsplit(hook.url).hostname})
                session.delete(hook)
        if hook is None:
            raise self._not_found(who, "webhook", webhook_uuid)
        self.forget_subscriptions()

    # -- deliveries ---------------------------------------------------------------------------

    def deliveries(self, who: Principal, webhook_uuid: str, *, status: str | None, limit: int,
                   offset: int) -> tuple[list[dict[str, Any]], int]:
        """The endpoint's deliveries, newest first, each with its attempts and the start of each reply."""
        with self.db.read() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                rows, total = repo.list_deliveries(session, hook.id, status=status, limit=limit, offset=offset)
                return [delivery_json(r, hook.uuid) for r in rows], total
        raise self._not_found(who, "webhook", webhook_uuid)

    def delivery(self, who: Principal, webhook_uuid: str, delivery_uuid: str) -> dict[str, Any]:
        with self.db.read() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            row = repo.get_delivery(session, hook.id, delivery_uuid) if hook is not None else None
            if row is not None:
                return delivery_json(row, hook.uuid)
        if hook is None:
            raise self._not_found(who, "webhook", webhook_uuid)
        raise self._not_found(who, "delivery", delivery_uuid)

    def replay(self, who: Principal, webhook_uuid: str, delivery_uuid: str) -> dict[str, Any]:
        """Send a delivery again, now, with the same ``webhook-id`` and body (receivers dedupe on the id).

        The retry schedule starts again (``attempts`` counts from the replay); the history keeps every
        attempt. Refused while an attempt is in flight or the endpoint is disabled.
        """
        now = self.clock()
        with self.db.write() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            row = repo.get_delivery(session, hook.id, delivery_uuid) if hook is not None else None
            if row is not None:
                if not hook.is_enabled:
                    raise ConflictError("the endpoint is disabled; enable it before replaying its deliveries")
                if row.status == repo.PENDING and row.claimed_until is not None and row.claimed_until > now:
                    raise ConflictError("an attempt of this delivery is in progress; try again shortly")
                row.status, row.attempts, row.next_attempt_at, row.updated_at = repo.PENDING, 0, now, now
                row.delivered_at = None
                self._audit(session, who, WEBHOOK_REPLAYED, hook, {"deliveryId": row.uuid, "event": row.event})
                out = delivery_json(row, hook.uuid)
        if row is None:
            if hook is None:
                raise self._not_found(who, "webhook", webhook_uuid)
            raise self._not_found(who, "delivery", delivery_uuid)
        if self.on_queued is not None:
            self.on_queued()
        return out

    def send_test(self, who: Principal, webhook_uuid: str) -> dict[str, Any]:
        """Queue a ``webhook.test`` event for this endpoint, whatever it subscribes to."""
        now = self.clock()
        with self.db.write() as session:
            hook = repo.get_webhook(session, who.organization_id, webhook_uuid)
            if hook is not None:
                if not hook.is_enabled:
                    raise ConflictError("the endpoint is disabled; enable it before testing it")
                body = event_body(TEST_EVENT, {"webhookId": hook.uuid, "message": "A test event from logmail"}, now)
                row = WebhookDelivery(**_delivery_row(hook.id, hook.organization_id, TEST_EVENT, body, now))
                session.add(row)
                session.flush()
                out = delivery_json(row, hook.uuid)
        if hook is None:
            raise self._not_found(who, "webhook", webhook_uuid)
        if self.on_queued is not None:
            self.on_queued()
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _audit(self, session, who: Principal, action: str, hook: Webhook, details: dict[str, Any]) -> None:
        audit = self._audit_log()
        if audit is not None:
            audit.add(session, who, action, target_type="webhook", target_id=hook.uuid, details=details)

    def _not_found(self, who: Principal, kind: str, public_id: str) -> NotFoundError:
        """404; recorded as a cross-tenant probe when the id is another organisation's."""
        events = self._events()
        if events is not None:
            with self.db.read() as session:
                owner = repo.owner_of(session, kind, public_id)
            if owner is not None and owner != who.organization_id:
                events.record_for(who, CROSS_TENANT_ACCESS, {"kind": kind, "id": public_id})
        return NotFoundError(f"{kind} not found")

    def reencrypt_secrets(self, batch: int = 200) -> tuple[int, list[str]]:
        """Re-encrypt every signing secret under the vault's current key (key rotation must call this
        before it retires old keys). Returns (how many changed, uuids of endpoints none decrypts)."""
        vault, changed, unreadable, after = self._vault(), 0, [], 0
        while True:
            with self.db.read() as session:
                rows = repo.all_secrets(session, after, batch)
            if not rows:
                return changed, unreadable
            after = rows[-1][0]
            with self.db.write() as session:
                for hook_id, uuid, stored in rows:
                    if not vault.needs_reencryption(stored):
                        continue
                    try:
                        secret = vault.decrypt(uuid, stored)
                    except CredentialError:
                        unreadable.append(uuid)
                        continue
                    changed += repo.set_secret(session, hook_id, stored, vault.encrypt(uuid, secret))


def _delivery_row(webhook_id: int, org: int, event: str, body: str, now: int) -> dict[str, Any]:
    return {"uuid": new_uuid(), "webhook_id": webhook_id, "organization_id": org, "event": event, "payload": body,
            "status": repo.PENDING, "attempts": 0, "next_attempt_at": now, "history": [], "created_at": now,
            "updated_at": now}
