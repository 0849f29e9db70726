"""Models of webhooks: an organisation's endpoints and every delivery to them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from logmail.store.models import MYSQL_TABLE_ARGS, Base, new_uuid, now_ms
from logmail.store.types import BigId, EpochMs, JsonText, LongText


class Webhook(Base):
    """An endpoint of one organisation; its signing secret is encrypted like mailbox passwords."""

    __tablename__ = "webhooks"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(300), default="")
    events: Mapped[list[str]] = mapped_column(JsonText, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class WebhookDelivery(Base):
    """One event for one endpoint, with its retries; ``uuid`` is the ``webhook-id`` (stable across retries).

    ``status``: pending → succeeded | failed (out of retries) | cancelled (endpoint disabled or deleted).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_webhook_created", "webhook_id", "created_at"),
        Index("ix_deliveries_created", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(BigId)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(LongText)  # the exact JSON body signed and sent
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(EpochMs, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[int | None] = mapped_column(EpochMs)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(Text)   # the start of the reply body
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JsonText, default=list)  # one entry per attempt
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    delivered_at: Mapped[int | None] = mapped_column(EpochMs)
