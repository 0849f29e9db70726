"""The life of a webhook delivery: claimed when due, attempted, recorded, retried on a schedule.

A delivery is one event for one endpoint; its uuid is the ``webhook-id`` of every attempt. After a
failed attempt the next one is due after ``RETRY_DELAYS`` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h); after
the last it is ``failed``. A 2xx answer makes it ``succeeded``. A 410 answer disables the endpoint
(``is_enabled`` false, with the reason) and cancels everything still pending for it.

Several daemons share the work: a delivery is claimed with a conditional UPDATE that only one of
them can win, for ``lease`` milliseconds (far longer than an attempt may take), and its outcome is
written only while that claim still holds. So an attempt is made once, however many dispatchers
look at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from logmail.config import WebhookSettings
from logmail.services.credentials import CredentialError, CredentialVault
from logmail.services.webhook_sender import RESPONSE_LIMIT, Outcome
from logmail.store import webhooks as repo
from logmail.store.database import Database
from logmail.store.models_webhooks import Webhook, WebhookDelivery

log = logging.getLogger("logmail.webhooks")

RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)  # seconds after failed attempt 1, 2, ...
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DAY_MS = 86_400_000
GONE_REASON = "the endpoint answered 410 Gone"
PRUNE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Attempt:
    """A claimed delivery, ready to send."""

    delivery_id: int
    uuid: str
    webhook_id: int
    webhook_uuid: str
    organization_id: int
    event: str
    url: str
    secret: str | None  # None: the stored secret does not decrypt (recorded as a failed attempt)
    payload: str
    claimed_until: int
    number: int  # 1 for the first attempt (since the delivery was created or replayed)


def next_delay_ms(attempts_made: int) -> int | None:
    """Milliseconds until the next attempt after ``attempts_made`` failed ones; None when out of tries."""
    if attempts_made > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts_made - 1] * 1000


class WebhookAttempts:
    def __init__(self, db: Database, vault: Callable[[], CredentialVault], tier_of: Callable[[int], Any],
                 settings: WebhookSettings, clock: Callable[[], int]) -> None:
        self.db = db
        self._vault = vault
        self._tier_of = tier_of
        self.settings = settings
        self.clock = clock

    @property
    def lease_ms(self) -> int:
        # An attempt is cut off at the timeout; the rest is room for the database around it.
        return int(max(60.0, 3 * self.settings.timeout + 30.0) * 1000)

    def due(self, limit: int) -> list[tuple[int, int]]:
        """(delivery id, webhook id) of deliveries due now that nobody holds."""
        with self.db.connect() as conn:
            return repo.due(conn, self.clock(), limit)

    def claim(self, delivery_id: int, owner: str) -> Attempt | None:
        """Take one due delivery; None if another dispatcher was first or it needs no attempt."""
        now = self.clock()
        until = now + self.lease_ms
        with self.db.write() as session:
            if not repo.claim(session, delivery_id, owner, now, until):
                return None
            delivery = repo.claimed(session, delivery_id, owner, until)
            if delivery is None:
                return None
            hook = session.get(Webhook, delivery.webhook_id)
            why_not = self._why_not(hook)
            if why_not is not None:  # a disabled endpoint or a tier without webhooks: nothing is sent
                _finish(delivery, repo.CANCELLED, now, error=why_not)
                return None
            return Attempt(delivery.id, delivery.uuid, hook.id, hook.uuid, delivery.organization_id, delivery.event,
                           hook.url, self._secret(hook), delivery.payload, until, delivery.attempts + 1)

    def _why_not(self, hook: Webhook | None) -> str | None:
        if hook is None or not hook.is_enabled:
            return "the endpoint is disabled"
        tier = self._tier_of(hook.organization_id)
        if tier is None or not tier.has("webhooks"):
            return "the organisation's tier does not include webhooks"
        return None

    def _secret(self, hook: Webhook) -> str | None:
        try:
            return self._vault().decrypt(hook.uuid, hook.secret_encrypted)
        except CredentialError:
            log.error("webhook %s: its signing secret does not decrypt (was the key retired?); rotate the secret",
                      hook.uuid)
            return None

    def release(self, attempt: Attempt, owner: str) -> None:
        """Give an unsent claim back (shutting down), so another dispatcher takes it at once."""
        with self.db.write_connection() as conn:
            repo.release(conn, attempt.delivery_id, owner, attempt.claimed_until)

    def record(self, attempt: Attempt, owner: str, outcome: Outcome, started_at: int) -> Webhook | None:
        """Write the attempt's outcome; returns the endpoint if this answer (410) disabled it."""
        now = self.clock()
        entry = {"attempt": attempt.number, "at": started_at, "statusCode": outcome.status_code,
                 "durationMs": outcome.duration_ms, "response": _cap(outcome.response, RESPONSE_LIMIT),
                 "error": _cap(outcome.error, 1000)}
        disabled = None
        with self.db.write() as session:
            delivery = repo.claimed(session, attempt.delivery_id, owner, attempt.claimed_until)
            if delivery is None:  # deleted with its endpoint meanwhile, or the claim ran out
                log.warning("webhook delivery %s: the outcome of attempt %d could not be recorded (claim lost)",
                            attempt.uuid, attempt.number)
                return None
            delivery.attempts = attempt.number
            delivery.history = [*(delivery.history or []), entry]
            delivery.last_status_code = outcome.status_code
            delivery.last_response = entry["response"]
            delivery.last_error = entry["error"]
            delivery.last_duration_ms = outcome.duration_ms
            hooks = update(Webhook).where(Webhook.id == attempt.webhook_id)
            if outcome.succeeded:
                _finish(delivery, repo.SUCCEEDED, now)
                delivery.delivered_at = now
                session.execute(hooks.values(consecutive_failures=0))
            elif outcome.gone:
                _finish(delivery, repo.FAILED, now, error=entry["error"] or GONE_REASON)
                session.execute(hooks.values(consecutive_failures=Webhook.consecutive_failures + 1))
                # Only the answer that turns it off reports it: two 410s in flight notify once.
                if session.execute(hooks.where(Webhook.is_enabled.is_(True))
                                   .values(is_enabled=False, disabled_reason=GONE_REASON, updated_at=now)).rowcount:
                    repo.cancel_pending(session, attempt.webhook_id, f"cancelled: {GONE_REASON}", now)
                    disabled = session.get(Webhook, attempt.webhook_id)
            else:
                session.execute(hooks.values(consecutive_failures=Webhook.consecutive_failures + 1))
                delay = next_delay_ms(attempt.number)
                if delay is None:
                    _finish(delivery, repo.FAILED, now, error=entry["error"] or _status_text(outcome))
                else:
                    delivery.next_attempt_at = now + delay
                    delivery.claimed_by = None
                    delivery.claimed_until = None
                    delivery.updated_at = now
                    if delivery.last_error is None:
                        delivery.last_error = _status_text(outcome)
        if outcome.succeeded:
            log.debug("webhook delivery %s (%s) succeeded on attempt %d", attempt.uuid, attempt.event, attempt.number)
        else:
            log.info("webhook delivery %s (%s) attempt %d to endpoint %s failed: %s", attempt.uuid, attempt.event,
                     attempt.number, attempt.webhook_uuid, entry["error"] or _status_text(outcome))
        if disabled is not None:
            log.warning("webhook %s disabled: %s", disabled.uuid, GONE_REASON)
        return disabled

    def prune(self, keep_alive: Callable[[], bool] = lambda: True) -> int:
        """Delete finished deliveries older than ``webhooks.history_days``; returns how many."""
        cutoff = self.clock() - self.settings.history_days * DAY_MS
        deleted = 0
        while keep_alive():
            with self.db.write_connection() as conn:
                ids = repo.old_finished(conn, cutoff, PRUNE_BATCH)
                deleted += repo.delete_deliveries(conn, ids)
            if len(ids) < PRUNE_BATCH:
                break
        if deleted:
            log.info("pruned %d webhook deliveries older than %d days", deleted, self.settings.history_days)
        return deleted


def _finish(delivery: WebhookDelivery, status: str, now: int, *, error: str | None = None) -> None:
    delivery.status = status
    delivery.claimed_by = None
    delivery.claimed_until = None
    delivery.updated_at = now
    if error is not None:
        delivery.last_error = error[:1000]


def _status_text(outcome: Outcome) -> str:
    return f"the endpoint answered {outcome.status_code}" if outcome.status_code is not None else "no answer"


def _cap(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]
