"""How one Stripe observation changes an organisation's billing record: ordering, and the tier it pays for.

Pure rules, no I/O: :func:`apply` takes the organisation's :class:`OrganizationBilling` row (and
changes it), its current tier and what an event observed, and returns a :class:`Decision`.

Order. Stripe delivers events late, twice and in any order, and every object in an event carries
its whole state, so the record is re-derived from the newest event and older news is ignored:
events are ordered by ``(created, rank)`` — Stripe's ``created`` has whole seconds, and within one
second the rank is the event's place in a subscription's life (checkout, failed payment, payment,
update, deletion). An event of the same type in the same second as the last one applied cannot be
ordered from what it carries; :func:`apply` then answers ``in_doubt`` and the caller fetches the
subscription from Stripe's API, whose answer is the current truth.

A subscription that ended (``canceled``, ``incomplete_expired``) never comes back, so later news of
it changes nothing. News about another subscription replaces the one on record only when it is
newer and the new one is paying; otherwise it is about a subscription the organisation replaced.

Tier. While the subscription is paying (active, trialing, past_due) the organisation is on the
tier whose ``price_id`` is the subscription's price (a price nobody claims but
``billing.stripe_price_id`` means the tier the checkout was for). When it is cancelled the
organisation keeps what it paid for until the period ends, then goes to the free tier (a pending
change the billing job applies); unpaid, expired or paused subscriptions go there at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logmail.services.stripe_events import FINAL, NOT_PAYING, PAYING, RECOVERABLE, Observation
from logmail.store.models_billing import OrganizationBilling

APPLIED = "applied"
STALE = "stale"
SUPERSEDED = "superseded"
ENDED = "ended"
IN_DOUBT = "in_doubt"

# The fields of the record a change is reported in (audit details name them in the API's camelCase).
FIELDS = {"stripe_customer_id": "customerId", "stripe_subscription_id": "subscriptionId",
          "subscription_status": "status", "price_id": "priceId", "current_period_end": "currentPeriodEnd",
          "cancel_at_period_end": "cancelAtPeriodEnd", "pending_tier": "pendingTier",
          "pending_tier_at": "pendingTierAt"}


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Which tier each Stripe price buys."""

    tiers: dict[str, str | None]  # tier name → its own price (None: none)
    default_price: str
    free_tier: str

    def tier_for(self, price: str | None, hint: str | None, current: str) -> str | None:
        """The tier ``price`` pays for; None when no tier claims it (the tier then stays as it is)."""
        if not price:
            return hint if hint in self.tiers and not self.tiers[hint] else None
        claimed = sorted(name for name, own in self.tiers.items() if own == price)
        for preferred in (hint, current):
            if preferred in claimed:
                return preferred
        if claimed:
            return claimed[0]
        if price == self.default_price:
            unpriced = {name for name, own in self.tiers.items() if not own and name != self.free_tier}
            for preferred in (hint, current):
                if preferred in unpriced:
                    return preferred
        return None


@dataclass(slots=True)
class Decision:
    outcome: str
    changes: dict[str, list[Any]] = field(default_factory=dict)  # API name → [before, after]
    tier: str | None = None            # the organisation's tier from now on, when it changes
    scheduled: tuple[str, int] | None = None  # a downgrade newly set for later: (tier, at ms)
    unknown_price: str | None = None   # a paying price no tier claims


def apply(row: OrganizationBilling, current_tier: str, seen: Observation, *, created: int, rank: int,
          event_id: str, book: PriceBook, now: int, resolved: bool = False) -> Decision:
    """Apply what an event (created ``created``, of ``rank``) observed to ``row``.

    ``resolved``: ``seen`` is the subscription as Stripe's API answered just now, so it is applied
    even when the event cannot be ordered against the last one.
    """
    key, last = (created, rank), (row.last_event_created or 0, row.last_event_rank or 0)
    on_record = row.stripe_subscription_id
    other = bool(seen.subscription_id and on_record and seen.subscription_id != on_record)
    if other:
        if key <= last or seen.status not in PAYING:
            return Decision(SUPERSEDED)
    elif key < last:
        return Decision(STALE)
    elif row.subscription_status in FINAL and on_record:
        return Decision(ENDED)
    elif key == last and row.last_event_id != event_id and not resolved:
        return Decision(IN_DOUBT)

    before = {name: getattr(row, name) for name in FIELDS}
    if other:  # a new subscription replaces the one on record
        row.stripe_subscription_id = seen.subscription_id
        row.subscription_status, row.price_id, row.current_period_end = None, None, None
        row.cancel_at_period_end = False
    row.stripe_customer_id = seen.customer_id or row.stripe_customer_id
    row.stripe_subscription_id = row.stripe_subscription_id or seen.subscription_id
    if seen.status and (not seen.only_recovers or row.subscription_status in RECOVERABLE):
        row.subscription_status = seen.status
    if seen.price_id:
        row.price_id = seen.price_id
    if seen.period_end is not None:
        row.current_period_end = seen.period_end
    if seen.cancel_at_period_end is not None:
        row.cancel_at_period_end = seen.cancel_at_period_end
    row.last_event_created, row.last_event_rank, row.last_event_id = created, rank, event_id

    decision = Decision(APPLIED)
    _follow_tier(row, current_tier, seen.tier_hint, book, now, decision)
    decision.changes = {FIELDS[name]: [old, getattr(row, name)] for name, old in before.items()
                        if getattr(row, name) != old}
    if decision.changes:
        row.updated_at = now
    return decision


def _follow_tier(row: OrganizationBilling, current: str, hint: str | None, book: PriceBook, now: int,
                 decision: Decision) -> None:
    status = row.subscription_status
    target: str | None = None
    if status in PAYING:
        target = book.tier_for(row.price_id, hint, current)
        if target is None:
            decision.unknown_price = row.price_id
        row.pending_tier = row.pending_tier_at = None
    elif status == "canceled" and row.current_period_end and row.current_period_end > now:
        if current != book.free_tier and (row.pending_tier, row.pending_tier_at) != (book.free_tier,
                                                                                     row.current_period_end):
            row.pending_tier, row.pending_tier_at = book.free_tier, row.current_period_end
            decision.scheduled = (book.free_tier, row.current_period_end)
    elif status == "canceled" or status in NOT_PAYING:
        target = book.free_tier
        row.pending_tier = row.pending_tier_at = None
    if target is not None and target != current:
        decision.tier = target
