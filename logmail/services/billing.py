"""Billing with Stripe: Checkout for a tier, the webhook that keeps subscriptions in step, and status.

Billing is on when ``billing.stripe_secret_key`` is set (and the webhook, when
``billing.stripe_webhook_secret`` is too); otherwise every billing call raises
:class:`BillingNotConfiguredError` (503) and nothing else in logmail notices.

Webhook events are applied at most once: each one is recorded in ``billing_events`` in the same
transaction as the change it made, and its row is written first, so a second delivery (even a
concurrent one, which waits on the unique key) finds it and changes nothing. The rules for order
and for the tier live in :mod:`logmail.services.billing_state`. Changes Stripe's events make are
audited with no user or token as actor and ``{"via": "stripe", "eventId", "eventType"}`` in the
details; the billing job's with ``{"via": "schedule"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from logmail.config import BillingSettings
from logmail.errors import BadRequestError, ConflictError, NotFoundError, TemporaryError
from logmail.services import audit as actions
from logmail.services import billing_state
from logmail.services.audit import AuditLog
from logmail.services.billing_state import PriceBook
from logmail.services.notifications import PAYMENT_FAILED, NotificationService
from logmail.services.policy import PolicyService
from logmail.services.principal import Principal
from logmail.services.stripe_events import (HANDLED, INVOICE_PAYMENT_FAILED, ORGANISATION_KEY, PAYING, PRICE_KEY,
                                            SUBSCRIPTION_FETCHED, TIER_KEY, Event, EventFormatError, Observation,
                                            observe, parse_event, subscription_observation)
from logmail.services.stripe_gateway import PaymentProviderError, StripeGateway, verify_event
from logmail.services.tiers import TierService
from logmail.services.usage import UsageService
from logmail.store.database import Database
from logmail.store.models import Organization, User
from logmail.store.models_billing import BillingEvent, OrganizationBilling

log = logging.getLogger("logmail.billing")

DUPLICATE = "duplicate"
UNMATCHED = "unmatched"
IGNORED = "ignored"
METHOD_STRIPE = "stripe"  # the audit's actor for what Stripe's events change: no user, no token
MAX_URL_LENGTH = 2000
# Currencies Stripe counts in whole units (https://docs.stripe.com/currencies#zero-decimal).
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


class BillingNotConfiguredError(TemporaryError):
    error = "Billing not configured"


class _InDoubt(Exception):
    """The event cannot be ordered against the last one applied: ask Stripe for the subscription."""

    def __init__(self, subscription_id: str | None) -> None:
        super().__init__(subscription_id)
        self.subscription_id = subscription_id


class BillingService:
    def __init__(self, db: Database, settings: BillingSettings, tiers: TierService, policy: PolicyService,
                 usage: UsageService, audit: AuditLog, notifications: NotificationService, *,
                 clock: Callable[[], int]) -> None:
        self.db = db
        self.settings = settings
        self.tiers = tiers
        self.policy = policy
        self.usage = usage
        self.audit = audit
        self.notifications = notifications
        self._clock = clock
        self._gateway: StripeGateway | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.stripe_secret_key)

    @property
    def gateway(self) -> StripeGateway:
        if self._gateway is None:
            self._gateway = StripeGateway(self.settings.stripe_secret_key, api_base=self.settings.api_base)
        return self._gateway

    def require_configured(self, *, webhook: bool = False) -> None:
        if not self.configured:
            raise BillingNotConfiguredError(
                "billing is not configured on this server: it needs billing.stripe_secret_key (STRIPE_SECRET_KEY) "
                "and billing.stripe_webhook_secret (STRIPE_WEBHOOK_SECRET)")
        if webhook and not self.settings.stripe_webhook_secret:
            raise BillingNotConfiguredError(
                "the Stripe webhook is not configured on this server: it needs billing.stripe_webhook_secret "
                "(STRIPE_WEBHOOK_SECRET)")

    # -- checkout -----------------------------------------------------------------------------------

    def create_checkout(self, who: Principal, tier_name: str, *, success_url: str | None = None,
                        cancel_url: str | None = None) -> dict[str, Any]:
        """A Stripe Checkout session for ``tier_name``'s price; the caller sends the buyer to its ``url``."""
        self.require_configured()
        try:
            tier = self.tiers.require(tier_name)
        except NotFoundError:
            raise BadRequestError(f"there is no tier called {tier_name!r}") from None
        if tier.name == self.settings.free_tier:
            raise BadRequestError(f"the {tier.display_name} tier is free: there is nothing to pay for")
        price = tier.price_id or self.settings.stripe_price_id
        if not price:
            raise BadRequestError(f"the {tier.display_name} tier has no Stripe price; a platform admin sets its "
                                  "priceId (or billing.stripe_price_id)")
        success = _url("successUrl", success_url or self.settings.success_url, "billing.success_url")
        cancel = _url("cancelUrl", cancel_url or self.settings.cancel_url, "billing.cancel_url")
        with self.db.read() as session:
            org = session.get(Organization, who.organization_id)
            row = _billing_of(session, who.organization_id)
            if row is not None and row.subscription_status in PAYING:
                raise ConflictError(f"the organisation already has a subscription ({row.subscription_status}); "
                                    "change or cancel it in Stripe's customer portal")
            customer = row.stripe_customer_id if row is not None else None
            user = session.get(User, who.user_id) if who.user_id is not None and not customer else None
        metadata = {ORGANISATION_KEY: org.uuid, TIER_KEY: tier.name, PRICE_KEY: price}
        params: dict[str, Any] = {
            "mode": "subscription", "line_items": [{"price": price, "quantity": 1}],
            "success_url": success, "cancel_url": cancel, "client_reference_id": org.uuid,
            # On the subscription too: every later event about it names the organisation and tier.
            "metadata": metadata, "subscription_data": {"metadata": metadata}}
        if customer:
            params["customer"] = customer
        elif user is not None:
            params["customer_email"] = user.email
        checkout = self.gateway.create_checkout_session(params)
        if not checkout.get("url") or not checkout.get("id"):
            raise PaymentProviderError("Stripe answered without a checkout URL")
        with self.db.write() as session:
            _ensure_billing(session, org.id, self._clock())  # from now on, events find the organisation
            self.audit.add(session, who, actions.BILLING_CHECKOUT_CREATED, target_type="tier",
                           target_id=tier.name[:36], details={"tier": tier.name, "priceId": price,
                                                              "sessionId": checkout["id"]})
        log.info("checkout session %s for organisation %s, tier %s", checkout["id"], org.uuid, tier.name)
        return {"url": checkout["url"], "sessionId": checkout["id"], "tier": tier.name, "priceId": price}

    # -- status ---------------------------------------------------------------------------------------

    def status(self, who: Principal) -> dict[str, Any]:
        """The caller's organisation: tier, subscription, a pending change and usage against the limits."""
        self.require_configured()
        report = self.usage.report(who)
        with self.db.read() as session:
            row = _billing_of(session, who.organization_id)
        subscription = None
        if row is not None and row.stripe_subscription_id:
            subscription = {"id": row.stripe_subscription_id, "status": row.subscription_status,
                            "priceId": row.price_id, "currentPeriodEnd": row.current_period_end,
                            "cancelAtPeriodEnd": bool(row.cancel_at_period_end)}
        pending = ({"tier": row.pending_tier, "at": row.pending_tier_at}
                   if row is not None and row.pending_tier else None)
        return {"organizationId": report["organizationId"], "tier": report["tier"], "subscription": subscription,
                "pendingChange": pending, "period": report["period"], "periodStart": report["periodStart"],
                "usage": report["usage"], "percent": report["percent"], "warnings": report["warnings"]}

    # -- the webhook ----------------------------------------------------------------------------------

    def receive(self, raw: bytes, signature: str | None) -> dict[str, Any]:
        """Verify and apply one webhook delivery; what became of it (``outcome``)."""
        self.require_configured(webhook=True)
        data = verify_event(raw, signature, self.settings.stripe_webhook_secret,
                            tolerance=self.settings.webhook_tolerance_seconds)
        try:
            event = parse_event(data)
        except EventFormatError as exc:
            raise BadRequestError(str(exc)) from None
        return {"received": True, "eventId": event.id, "outcome": self.apply_event(event)}

    def apply_event(self, event: Event) -> str:
        """Apply a verified event once, whatever order it arrives in; its outcome."""
        seen = observe(event) if event.type in HANDLED else None
        book = self._price_book() if seen is not None else None
        snapshot: Observation | None = None
        for attempt in range(3):
            try:
                outcome, tier_changed_for = self._apply(event, seen, book, snapshot)
            except _InDoubt as doubt:
                # Stripe's answer is the truth; if Stripe cannot answer, the later delivery wins.
                snapshot = self._fetch(doubt.subscription_id) or seen
                continue
            except IntegrityError:  # the same event, recorded meanwhile by a concurrent delivery
                if attempt == 2:
                    raise
                continue
            if tier_changed_for is not None:
                self.policy.forget(organization_id=tier_changed_for)  # the door sees the new tier at once
            log.info("Stripe event %s (%s): %s", event.id, event.type, outcome)
            return outcome
        raise TemporaryError("the Stripe event could not be applied; Stripe will deliver it again")

    def _apply(self, event: Event, seen: Observation | None, book: PriceBook | None,
               snapshot: Observation | None) -> tuple[str, int | None]:
        now = self._clock()
        with self.db.write() as session:
            if session.execute(select(BillingEvent.id).where(BillingEvent.stripe_event_id == event.id)).first():
                return DUPLICATE, None
            record = BillingEvent(stripe_event_id=event.id, type=event.type, created=event.created,
                                  outcome=IGNORED, processed_at=now)
            session.add(record)
            session.flush()  # first: a concurrent delivery of this event waits here, then fails on the key
            if seen is None or book is None:
                return IGNORED, None
            org = _find_organization(session, seen)
            if org is None:
                log.warning("Stripe event %s (%s) names no organisation of ours", event.id, event.type)
                record.outcome = UNMATCHED
                return UNMATCHED, None
            record.organization_id = org.id
            row = _ensure_billing(session, org.id, now, lock=True)
            decision = billing_state.apply(row, org.tier, snapshot or seen, created=event.created, rank=event.rank,
                                           event_id=event.id, book=book, now=now, resolved=snapshot is not None)
            if decision.outcome == billing_state.IN_DOUBT:
                raise _InDoubt(row.stripe_subscription_id)  # rolls this transaction back, record and all
            record.outcome = decision.outcome
            if decision.outcome == billing_state.APPLIED:
                self._record(session, org, event, seen, decision, snapshot is not None)
            return decision.outcome, org.id if decision.tier is not None else None

    def _record(self, session: Session, org: Organization, event: Event, seen: Observation,
                decision: billing_state.Decision, fetched: bool) -> None:
        """Audit what the event changed, move the tier, and tell the owners of a failed payment."""
        via = {"via": METHOD_STRIPE, "eventId": event.id, "eventType": event.type}
        if fetched:
            via["resolvedBy"] = SUBSCRIPTION_FETCHED
        actor = _stripe_actor(org)
        if decision.changes:
            self.audit.add(session, actor, actions.BILLING_SUBSCRIPTION_CHANGED, organization_id=org.id,
                           details={**via, "changes": decision.changes})
        if event.type == INVOICE_PAYMENT_FAILED:
            self.audit.add(session, actor, actions.BILLING_PAYMENT_FAILED, organization_id=org.id,
                           details={**via, "invoice": seen.invoice})
            self._tell_owners(session, org, event, seen.invoice)
        if decision.scheduled is not None:
            tier, at = decision.scheduled
            self.audit.add(session, actor, actions.BILLING_DOWNGRADE_SCHEDULED, organization_id=org.id,
                           details={**via, "tier": tier, "at": at})
        if decision.tier is not None:
            self.audit.add(session, actor, actions.BILLING_TIER_CHANGED, organization_id=org.id,
                           details={**via, "from": org.tier, "to": decision.tier})
            log.info("organisation %s: tier %s → %s (Stripe event %s)", org.uuid, org.tier, decision.tier, event.id)
            org.tier = decision.tier
        if decision.unknown_price:
            log.warning("organisation %s pays with price %s, which no tier has: its tier stays %s",
                        org.uuid, decision.unknown_price, org.tier)

    def _tell_owners(self, session: Session, org: Organization, event: Event, invoice: dict[str, Any]) -> None:
        owners = session.execute(select(User.id).where(User.organization_id == org.id, User.role == "owner")
                                 ).scalars().all()
        amount = _money(invoice.get("amountDue"), invoice.get("currency"))
        retry = invoice.get("nextPaymentAttempt")
        body = (f"The payment{' of ' + amount if amount else ''} for your organisation's subscription failed"
                + (f" (attempt {invoice['attemptCount']})" if isinstance(invoice.get("attemptCount"), int) else "")
                + ". " + (f"Stripe tries again on {_date(retry)}. " if isinstance(retry, int) else "")
                + f"Update the payment method to keep the {org.tier} tier"
                + (f": {invoice['hostedInvoiceUrl']}" if invoice.get("hostedInvoiceUrl") else "") + ".")
        key = f"payment-failed:{invoice.get('id') or event.id}:{invoice.get('attemptCount') or 0}"
        for user_id in owners:
            try:
                self.notifications.notify(user_id, PAYMENT_FAILED, "A payment failed", body, dedupe_key=key,
                                          severity="critical", data={"eventId": event.id, **invoice},
                                          session=session)
            except Exception:  # the event must not fail because a notification did
                log.warning("could not tell owner %s of a failed payment", user_id, exc_info=True)

    def _fetch(self, subscription_id: str | None) -> Observation | None:
        if not subscription_id:
            return None
        try:
            return subscription_observation(self.gateway.subscription(subscription_id))
        except Exception as exc:
            log.warning("cannot read subscription %s from Stripe (%s); applying the event as delivered",
                        subscription_id, exc)
            return None

    def _price_book(self) -> PriceBook:
        self.tiers.forget()  # a price a platform admin set a moment ago, in any process
        return PriceBook({t.name: t.price_id for t in self.tiers.all()}, self.settings.stripe_price_id,
                         self.settings.free_tier)

    # -- the end of a paid period -----------------------------------------------------------------------

    def apply_due_downgrades(self, now: int | None = None) -> int:
        """Move organisations whose paid period has ended to their pending tier; how many moved."""
        now = self._clock() if now is None else now
        moved: list[int] = []
        with self.db.write() as session:
            rows = session.execute(select(OrganizationBilling).where(
                OrganizationBilling.pending_tier.is_not(None), OrganizationBilling.pending_tier_at <= now,
            ).with_for_update()).scalars().all()
            for row in rows:
                org = session.get(Organization, row.organization_id)
                details = {"via": "schedule", "from": org.tier, "to": row.pending_tier, "dueAt": row.pending_tier_at}
                if org.tier != row.pending_tier:
                    self.audit.add(session, _stripe_actor(org), actions.BILLING_TIER_CHANGED,
                                   organization_id=org.id, details=details)
                    log.info("organisation %s: paid period over, tier %s → %s", org.uuid, org.tier, row.pending_tier)
                    org.tier = row.pending_tier
                    moved.append(org.id)
                row.pending_tier = row.pending_tier_at = None
                row.updated_at = now
        for organization_id in moved:
            self.policy.forget(organization_id=organization_id)
        return len(moved)


def _billing_of(session: Session, organization_id: int) -> OrganizationBilling | None:
    return session.execute(select(OrganizationBilling).where(OrganizationBilling.organization_id == organization_id)
                           ).scalar_one_or_none()


def _ensure_billing(session: Session, organization_id: int, now: int, *, lock: bool = False) -> OrganizationBilling:
    """The organisation's billing row, made if missing (and locked for this transaction with ``lock``)."""
    query = select(OrganizationBilling).where(OrganizationBilling.organization_id == organization_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = OrganizationBilling(organization_id=organization_id, cancel_at_period_end=False,
                                      last_event_created=0, last_event_rank=0, created_at=now, updated_at=now)
            session.add(row)
    except IntegrityError:  # made meanwhile by another transaction
        row = session.execute(query).scalar_one()
    return row


def _find_organization(session: Session, seen: Observation) -> Organization | None:
    """By our metadata first, then by the subscription or customer on record."""
    if seen.organization_uuid:
        org = session.execute(select(Organization).where(Organization.uuid == seen.organization_uuid)
                              ).scalar_one_or_none()
        if org is not None:
            return org
    for column, value in ((OrganizationBilling.stripe_subscription_id, seen.subscription_id),
                          (OrganizationBilling.stripe_customer_id, seen.customer_id)):
        if value:
            organization_id = session.execute(select(OrganizationBilling.organization_id).where(column == value)
                                              .limit(1)).scalar()
            if organization_id is not None:
                return session.get(Organization, organization_id)
    return None


def _stripe_actor(org: Organization) -> Principal:
    return Principal(organization_id=org.id, organization_uuid=org.uuid, user_id=None, token_id=None,
                     scopes=frozenset(), method=METHOD_STRIPE)


def _url(name: str, value: str | None, setting: str) -> str:
    if not value:
        raise BadRequestError(f"send {name}, or set {setting} on the server")
    if not value.startswith(("https://", "http://")) or len(value) > MAX_URL_LENGTH:
        raise BadRequestError(f"{name} must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    return value


def _money(amount: Any, currency: Any) -> str | None:
    if not isinstance(amount, int) or not isinstance(currency, str):
        return None
    if currency.lower() in _ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


def _date(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
