"""SQLAlchemy 2.0 typed models of logmail's metadata.

Every tenant-owned table carries ``organization_id``; repositories take the organisation as an
argument, so no query can reach tenant data without one. Times are epoch milliseconds. Public ids
are UUID strings; integer keys stay internal.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from logmail.store.types import BigId, EpochMs, JsonText, LongText

MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}


def now_ms() -> int:
    return int(time.time() * 1000)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | suspended
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[str] = mapped_column(String(64), default="unlimited")  # TierLimit.name
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    # Running totals of what the organisation keeps now (not per month): the storage quota reads these.
    storage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)
    suspended_at: Mapped[int | None] = mapped_column(EpochMs)
    suspended_reason: Mapped[str | None] = mapped_column(String(200))


class TierLimit(Base):
    """A tier: limits and feature flags as data. NULL in a limit means "no limit"."""

    __tablename__ = "tier_limits"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    max_addresses: Mapped[int | None] = mapped_column(Integer)
    emails_per_month: Mapped[int | None] = mapped_column(BigInteger)
    emails_per_minute: Mapped[int | None] = mapped_column(Integer)
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    max_message_size: Mapped[int | None] = mapped_column(BigInteger)
    api_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    features: Mapped[dict[str, bool]] = mapped_column(JsonText, default=dict)
    price_id: Mapped[str | None] = mapped_column(String(100))  # Stripe price, for billing
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class UsageRecord(Base):
    """One organisation's usage in one calendar month (UTC), ``period`` as ``YYYY-MM``.

    ``storage_bytes`` is the organisation's total kept at the last change in that month.
    """

    __tablename__ = "usage_tracking"
    __table_args__ = (
        UniqueConstraint("organization_id", "period", name="uq_usage_org_period"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    emails_received: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    api_calls: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class OrganizationDomain(Base):
    """A mail domain the platform assigned to one organisation: only it may have addresses there."""

    __tablename__ = "organization_domains"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="member")  # owner | admin | member
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class EmailAddress(Base):
    __tablename__ = "email_addresses"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)  # lower-case; "*@domain" for a catch-all
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    kind: Mapped[str] = mapped_column(String(16), default="exact")  # exact | catchall
    domain: Mapped[str] = mapped_column(String(255), default="", index=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of a 256-bit random token
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings so people can tell tokens apart
    scopes: Mapped[str] = mapped_column(String(200), default="read,write,ingest,admin")
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    expires_at: Mapped[int | None] = mapped_column(EpochMs)
    last_used_at: Mapped[int | None] = mapped_column(EpochMs)
    revoked_at: Mapped[int | None] = mapped_column(EpochMs)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("organization_id", "ingest_id", name="uq_messages_org_ingest"),
        Index("ix_messages_org_id", "organization_id", "id"),
        Index("ix_messages_org_received", "organization_id", "received_at"),
        Index("ix_messages_org_from", "organization_id", "from_address"),
        Index("ix_messages_org_message_id", "organization_id", "message_id", mysql_length={"message_id": 255}),
        # Ids are never reused, even after the newest mail is deleted: clients resume from them.
        {**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    ingest_id: Mapped[str] = mapped_column(String(36))  # idempotency key of the accepted message
    source: Mapped[str] = mapped_column(String(16), default="smtp")  # smtp | lmtp | http | cli | imap | pop3
    raw_key: Mapped[str] = mapped_column(String(100))
    body_key: Mapped[str | None] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str] | None] = mapped_column(JsonText)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(320), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    to: Mapped[list[dict[str, str]]] = mapped_column(JsonText, default=list)
    cc: Mapped[list[dict[str, str]]] = mapped_column(JsonText, default=list)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[list[str]] = mapped_column(JsonText, default=list)
    date: Mapped[int | None] = mapped_column(EpochMs)
    received_at: Mapped[int] = mapped_column(EpochMs)
    size: Mapped[int] = mapped_column(Integer)
    snippet: Mapped[str] = mapped_column(String(400), default="")
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    parse_errors: Mapped[list[str]] = mapped_column(JsonText, default=list)
    is_read: Mapped[bool] = mapped_column(Boolean, default=False)
    # Mail pulled from a registered mailbox: which account and folder it came from.
    account_id: Mapped[int | None] = mapped_column(BigId)
    folder: Mapped[str | None] = mapped_column(String(255))


class MessageRecipient(Base):
    """Every address a message was for (envelope, To and Cc), lower-cased: serves ``?to=``."""

    __tablename__ = "message_recipients"
    __table_args__ = (
        Index("ix_recipients_org_address", "organization_id", "address", "message_id"),
        Index("ix_recipients_org_address_id", "organization_id", "address_id", "message_id"),
        MYSQL_TABLE_ARGS,
    )

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    organization_id: Mapped[int] = mapped_column(BigId)
    # The organisation's EmailAddress this envelope recipient was delivered to: serves per-address views.
    address_id: Mapped[int | None] = mapped_column(BigId)


class MessageTag(Base):
    """A user's label on a message; ``tag:`` searches read the (organisation, tag) index."""

    __tablename__ = "message_tags"
    __table_args__ = (
        Index("ix_tags_org_tag_message", "organization_id", "tag", "message_id"),
        MYSQL_TABLE_ARGS,
    )

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int] = mapped_column(BigId)


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(BigId, index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(1000))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    sha256: Mapped[str] = mapped_column(String(64))
    content_key: Mapped[str] = mapped_column(String(100))


class Job(Base):
    """A unit of work in the outbox queue (the embedded work-queue backend)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "queue", "status", "available_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonText)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[int] = mapped_column(EpochMs)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class Lease(Base):
    """A named, expiring claim: the one daemon holding it does the work it names."""

    __tablename__ = "leases"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[int] = mapped_column(EpochMs)


class UserSession(Base):
    """One login on one device: the family of refresh tokens that rotate from it.

    ``expires_at`` is the absolute limit, fixed at login; rotation never moves it. The session ends
    (``revoked_at``) on logout, on refresh-token reuse, on a change of device, or when a limit passes.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_revoked", "user_id", "revoked_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_fingerprint: Mapped[str] = mapped_column(String(64))  # "firefox/linux": family and platform only
    device_label: Mapped[str] = mapped_column(String(100))       # "Firefox on Linux"
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_ip: Mapped[str] = mapped_column(String(45), default="")
    last_ip: Mapped[str] = mapped_column(String(45), default="")
    created_at: Mapped[int] = mapped_column(EpochMs)
    last_seen_at: Mapped[int] = mapped_column(EpochMs)
    expires_at: Mapped[int] = mapped_column(EpochMs)
    revoked_at: Mapped[int | None] = mapped_column(EpochMs)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(Base):
    """One opaque refresh token of a session, stored as its SHA-256 hash.

    The session's current token has ``rotated_at`` NULL; a rotated one points at its successor, so
    "the immediately previous token" is the one whose successor is current.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(EpochMs)
    expires_at: Mapped[int] = mapped_column(EpochMs)
    rotated_at: Mapped[int | None] = mapped_column(EpochMs)
    successor_id: Mapped[int | None] = mapped_column(BigId)


class SecurityEvent(Base):
    """An authentication or isolation decision: logins, refresh outcomes, revocations, probes.

    ``organization_id`` is NULL only for events about no known account (a login for an unknown email).
    """

    __tablename__ = "security_events"
    __table_args__ = (
        Index("ix_security_events_user_created", "user_id", "created_at"),
        Index("ix_security_events_org_created", "organization_id", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key: the trail outlives what it names
    user_id: Mapped[int | None] = mapped_column(BigId)
    user_uuid: Mapped[str | None] = mapped_column(String(36))
    session_uuid: Mapped[str | None] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    created_at: Mapped[int] = mapped_column(EpochMs)


class AuditEntry(Base):
    """A user action inside an organisation, appended in the transaction that made the change."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_org_created", "organization_id", "created_at"),
        Index("ix_audit_org_actor_created", "organization_id", "actor_user_uuid", "created_at"),
        Index("ix_audit_org_action_created", "organization_id", "action", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor_user_uuid: Mapped[str | None] = mapped_column(String(36))   # uuids, not keys: users may be deleted
    actor_token_uuid: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    ip: Mapped[str] = mapped_column(String(45), default="")
    created_at: Mapped[int] = mapped_column(EpochMs)


class MailAccount(Base):
    """An external IMAP or POP3 mailbox a user registered; the daemon pulls its mail.

    The password must be presented to the remote server, so it is encrypted (Fernet, the key outside
    the database), never hashed. ``is_enabled`` false is a soft delete: nothing syncs it any more.
    """

    __tablename__ = "mail_accounts"
    __table_args__ = (
        Index("ix_mail_accounts_org_user", "organization_id", "user_id"),
        Index("ix_mail_accounts_due", "is_enabled", "is_sync_enabled", "next_sync_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # NULL: the organisation's own (registered with a token that belongs to no user, like owner.token).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_name: Mapped[str] = mapped_column(String(200))
    email_address: Mapped[str] = mapped_column(String(320))
    protocol: Mapped[str] = mapped_column(String(8))      # imap | pop3
    hostname: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    encryption: Mapped[str] = mapped_column(String(10))   # none | tls | starttls
    username: Mapped[str] = mapped_column(String(320))
    password_encrypted: Mapped[str] = mapped_column(Text)  # Fernet token; associated with the account uuid
    folders: Mapped[list[str]] = mapped_column(JsonText, default=lambda: ["INBOX"])
    use_idle: Mapped[bool] = mapped_column(Boolean, default=False)
    is_sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_interval: Mapped[int] = mapped_column(Integer, default=300)  # seconds
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_syncing: Mapped[bool] = mapped_column(Boolean, default=False)
    sync_started_at: Mapped[int | None] = mapped_column(EpochMs)
    last_sync_at: Mapped[int | None] = mapped_column(EpochMs)
    next_sync_at: Mapped[int] = mapped_column(EpochMs, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_error_at: Mapped[int | None] = mapped_column(EpochMs)
    auth_failed: Mapped[bool] = mapped_column(Boolean, default=False)  # no retries until the account changes
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    sync_stats: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class MailAccountFolder(Base):
    """Sync progress of one IMAP folder: everything up to ``last_uid`` under ``uidvalidity`` is in."""

    __tablename__ = "mail_account_folders"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


class MailAccountSeen(Base):
    """What an account already imported, by a stable key: a POP3 UIDL, or Message-ID and size for
    IMAP (so a UIDVALIDITY change re-matches instead of importing everything again)."""

    __tablename__ = "mail_account_seen"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(191), primary_key=True)
    created_at: Mapped[int] = mapped_column(EpochMs, default=now_ms)


# The models of other areas live in their own modules on the same Base; importing them here keeps
# one metadata (migrations, the schema comparison test) however the package is entered.
from logmail.store import models_billing, models_health, models_outbound, models_webhooks  # noqa: E402,F401
