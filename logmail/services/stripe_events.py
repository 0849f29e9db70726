"""Stripe events as logmail reads them: pure functions from an event's JSON to what it says.

Nothing here does I/O. :func:`parse_event` checks the envelope; :func:`observe` turns the object
inside into an :class:`Observation` of one subscription: which organisation, customer and
subscription it is about and what state the event shows. Fields an event does not speak about
are None, so applying it leaves them as they are.

Both shapes of Stripe's objects are read: before API version 2025-03-31 a subscription carries
``current_period_end`` and an invoice ``subscription`` and ``subscription_details``; from then on
the period sits on the subscription's items and the invoice names its subscription under
``parent.subscription_details``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

CHECKOUT_COMPLETED = "checkout.session.completed"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"
SUBSCRIPTION_FETCHED = "subscription.fetched"  # not Stripe's: the subscription as its API answers now

# Stripe's ``created`` has whole seconds, and the events of one change often share one. Within a
# second, events are ordered by where they fall in a subscription's life.
RANK = {CHECKOUT_COMPLETED: 1, INVOICE_PAYMENT_FAILED: 2, INVOICE_PAID: 3, SUBSCRIPTION_UPDATED: 4,
        SUBSCRIPTION_DELETED: 5}
HANDLED = tuple(RANK)

# The organisation pays for its tier in these states (past_due: Stripe is still retrying the payment).
PAYING = ("active", "trialing", "past_due")
# These end the tier at once; ``canceled`` ends it at the end of the period paid for.
NOT_PAYING = ("unpaid", "incomplete_expired", "paused")
# A subscription in these states never comes back: later news about it is history.
FINAL = ("canceled", "incomplete_expired")
# An ``invoice.paid`` brings a subscription in these states back to active.
RECOVERABLE = (None, "incomplete", "past_due", "unpaid")

ORGANISATION_KEY = "organizationId"  # metadata logmail puts on checkout sessions and subscriptions
TIER_KEY = "tier"
PRICE_KEY = "priceId"


class EventFormatError(ValueError):
    """The body is signed by Stripe but is not an event logmail can read."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    created: int  # epoch seconds
    object: dict[str, Any]

    @property
    def rank(self) -> int:
        return RANK.get(self.type, 0)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one event (or a fresh copy of the subscription) says about one subscription."""

    organization_uuid: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    status: str | None = None
    price_id: str | None = None
    tier_hint: str | None = None  # the tier the checkout was for (our metadata)
    period_end: int | None = None  # epoch ms
    cancel_at_period_end: bool | None = None
    only_recovers: bool = False  # invoice.paid: a status to return to, not to impose
    invoice: dict[str, Any] = field(default_factory=dict)  # invoice.payment_failed: what the owner is told


def parse_event(data: Any) -> Event:
    """The envelope of a Stripe event, checked; EventFormatError names what is wrong."""
    if not isinstance(data, dict) or data.get("object") != "event":
        raise EventFormatError("the body is not a Stripe event")
    event_id, event_type, created = data.get("id"), data.get("type"), data.get("created")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise EventFormatError("the event has no id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise EventFormatError("the event has no type")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise EventFormatError("the event has no created time")
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    if not isinstance(obj, dict):
        raise EventFormatError("the event has no data.object")
    return Event(event_id, event_type, created, obj)


def observe(event: Event) -> Observation | None:
    """What ``event`` says about a subscription; None when it says nothing logmail acts on."""
    obj = event.object
    if event.type == CHECKOUT_COMPLETED:
        return _checkout(obj)
    if event.type in (SUBSCRIPTION_UPDATED, SUBSCRIPTION_DELETED):
        seen = subscription_observation(obj)
        return replace(seen, status=seen.status or "canceled") if event.type == SUBSCRIPTION_DELETED else seen
    if event.type in (INVOICE_PAID, INVOICE_PAYMENT_FAILED):
        return _invoice(obj, paid=event.type == INVOICE_PAID)
    return None


def subscription_observation(sub: dict[str, Any]) -> Observation:
    """A Subscription object (from an event, or fetched from Stripe's API)."""
    metadata = _dict(sub.get("metadata"))
    items = [i for i in _list(sub.get("items")) if isinstance(i, dict)]
    price = _id(items[0].get("price")) if items else None
    period_end = sub.get("current_period_end")
    if not isinstance(period_end, int):
        ends = [i.get("current_period_end") for i in items if isinstance(i.get("current_period_end"), int)]
        period_end = max(ends) if ends else None
    status = sub.get("status")
    return Observation(
        organization_uuid=_str(metadata.get(ORGANISATION_KEY)), customer_id=_id(sub.get("customer")),
        subscription_id=_str(sub.get("id")), status=_str(status), price_id=price,
        tier_hint=_str(metadata.get(TIER_KEY)), period_end=period_end * 1000 if period_end is not None else None,
        cancel_at_period_end=sub.get("cancel_at_period_end") if isinstance(sub.get("cancel_at_period_end"), bool)
        else None)


def _checkout(session: dict[str, Any]) -> Observation | None:
    if session.get("mode") != "subscription":
        return None  # a one-off payment buys no tier
    metadata = _dict(session.get("metadata"))
    paid = session.get("payment_status") in ("paid", "no_payment_required")
    return Observation(
        organization_uuid=_str(metadata.get(ORGANISATION_KEY)) or _str(session.get("client_reference_id")),
        customer_id=_id(session.get("customer")), subscription_id=_id(session.get("subscription")),
        status="active" if paid else None, price_id=_str(metadata.get(PRICE_KEY)),
        tier_hint=_str(metadata.get(TIER_KEY)), only_recovers=True)


def _invoice(invoice: dict[str, Any], *, paid: bool) -> Observation | None:
    details = _dict(_dict(invoice.get("parent")).get("subscription_details")) or \
        _dict(invoice.get("subscription_details"))
    subscription = _id(invoice.get("subscription")) or _id(details.get("subscription"))
    if subscription is None:
        return None  # an invoice outside any subscription
    metadata = _dict(details.get("metadata"))
    ends = [_dict(line.get("period")).get("end") for line in _list(invoice.get("lines")) if isinstance(line, dict)]
    ends = [end for end in ends if isinstance(end, int)]
    facts = {} if paid else {
        "id": _str(invoice.get("id")), "attemptCount": invoice.get("attempt_count"),
        "amountDue": invoice.get("amount_due"), "currency": _str(invoice.get("currency")),
        "nextPaymentAttempt": invoice.get("next_payment_attempt"),
        "hostedInvoiceUrl": _str(invoice.get("hosted_invoice_url"))}
    return Observation(
        organization_uuid=_str(metadata.get(ORGANISATION_KEY)), customer_id=_id(invoice.get("customer")),
        subscription_id=subscription, status="active" if paid else "past_due",
        tier_hint=_str(metadata.get(TIER_KEY)), period_end=max(ends) * 1000 if paid and ends else None,
        only_recovers=paid, invoice=facts)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A Stripe list object's ``data`` (or a plain list)."""
    if isinstance(value, dict):
        value = value.get("data")
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _id(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or expanded into its object."""
    if isinstance(value, dict):
        value = value.get("id")
    return _str(value)
