"""Models of billing: each organisation's Stripe subscription, and every Stripe event received."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from logmail.store.models import MYSQL_TABLE_ARGS, Base, now_ms
from logmail.store.types import BigId, EpochMs


class OrganizationBilling(Base):
    """An organisation's subscription as the newest Stripe event applied describes it.

    ``last_event_created`` (Stripe's ``created``, whole seconds) and ``last_event_rank`` (the event's
    place in a subscription's life, for events of the same second) order the events: one that is
    older than what was applied changes nothing. ``pending_tier`` is applied at ``pending_tier_at``
    by the billing job (the end of a period paid for after the subscription ended).
    """

    __tablename__ = "organization_billing"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    subscription_status: Mapped[str | None] = mapped_column(String(32))  # Stripe's: active, past_due, canceled, ...
    price_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end: Mapped[int | None] = mapped_column(EpochMs)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_tier: Mapped[str | None] = mapped_column(String(64))
    pending_tier_at: Mapped[int | None] = mapped_column(EpochMs, index=True)
    last_event_id: Mapped[str | None] = mapped_column(String(255))
    last_event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_rank: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class BillingEvent(Base):
    """One Stripe event, recorded in the transaction that handled it: a redelivery finds it here.

    ``outcome``: applied | stale (older than what was applied) | superseded (about a subscription the
    organisation no longer has) | ended (the subscription had already ended) | unmatched (no
    organisation of ours) | ignored (a type or mode logmail does not act on).
    """

    __tablename__ = "billing_events"
    __table_args__ = (
        Index("ix_billing_events_org_processed", "organization_id", "processed_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's, epoch seconds
    organization_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key: the trail outlives what it names
    outcome: Mapped[str] = mapped_column(String(32), default="applied")
    processed_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
