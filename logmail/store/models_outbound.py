"""Models of what logmail sends out and tells people: outbound mail and its attempts, notifications."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from logmail.store.models import MYSQL_TABLE_ARGS, Base, new_uuid, now_ms
from logmail.store.types import BigId, EpochMs, JsonText, LongText


class OutboundEmail(Base):
    """One mail logmail sends (a notification, an alert), with its delivery state.

    ``status``: queued → sending → sent | failed (5xx: permanent) | expired (unsent after the expiry).
    A sender marks the row ``sending`` with a claim (``claimed_by``, ``claimed_until``) *before* it
    talks to a server, so no two daemons send it; a daemon that dies mid-send leaves a claim that runs
    out, and reconciliation decides from the attempt log whether the mail went.
    """

    __tablename__ = "outbound_emails"
    __table_args__ = (
        Index("ix_outbound_due", "status", "next_attempt_at"),
        Index("ix_outbound_org_created", "organization_id", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int | None] = mapped_column(BigId)   # None: platform alerts
    user_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(32), default="notification")  # notification | alert
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(998))
    text_body: Mapped[str] = mapped_column(LongText)
    html_body: Mapped[str | None] = mapped_column(LongText)
    message_id: Mapped[str] = mapped_column(String(255))  # the Message-ID header we set, for reconciling
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(EpochMs, default=0)
    expires_at: Mapped[int] = mapped_column(EpochMs)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[int | None] = mapped_column(EpochMs)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    sent_at: Mapped[int | None] = mapped_column(EpochMs)


class OutboundAttempt(Base):
    """One try at one server: which, what it answered, how long it took."""

    __tablename__ = "outbound_attempts"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("outbound_emails.id", ondelete="CASCADE"), index=True)
    server: Mapped[str] = mapped_column(String(300))        # host:port
    outcome: Mapped[str] = mapped_column(String(16))        # sent | temporary | permanent | started
    code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(String(1000))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class Notification(Base):
    """Something a user (or the platform's admins) must know; one per event, never one per retry.

    ``dedupe_key`` names the event ("quota:2026-11:emailsReceived:90"); a second notification with
    the same key for the same user is not created.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_created", "user_id", "created_at"),
        Index("uq_notifications_user_dedupe", "user_id", "dedupe_key", unique=True),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int | None] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="info")  # info | warning | critical
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(191))
    read_at: Mapped[int | None] = mapped_column(EpochMs)
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class NotificationPreference(Base):
    """Per user and kind: in the app, by email, or both (absent: the kind's default)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[bool] = mapped_column(Boolean, default=True)
