"""The audit log: what users did inside their organisation, written in the transaction that did it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from logmail.errors import ForbiddenError
from logmail.services.principal import METHOD_CLI, Principal
from logmail.store import audit as repo
from logmail.store.database import Database
from logmail.store.models import AuditEntry

# Actions, in one place, so the log can be filtered by them.
REGISTER = "auth.register"
LOGIN = "auth.login"
LOGOUT = "auth.logout"
SESSION_REVOKED = "session.revoked"
SESSIONS_REVOKED = "sessions.revoked"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
USER_CREATED = "user.created"
USER_DELETED = "user.deleted"
MESSAGE_DELETED = "message.deleted"
MESSAGES_DELETED = "messages.deleted"  # delete by search: one entry with the query and the count
ADDRESS_CREATED = "address.created"
ADDRESS_DELETED = "address.deleted"
DOMAIN_ASSIGNED = "domain.assigned"
DOMAIN_REMOVED = "domain.removed"
TIER_CREATED = "tier.created"
TIER_UPDATED = "tier.updated"
ACCOUNT_CREATED = "account.created"
ACCOUNT_UPDATED = "account.updated"
ACCOUNT_DELETED = "account.deleted"
KEYS_ROTATED = "keys.rotated"
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_UPDATED = "webhook.updated"
WEBHOOK_DELETED = "webhook.deleted"
WEBHOOK_REPLAYED = "webhook.replayed"
ACTIONS = (REGISTER, LOGIN, LOGOUT, SESSION_REVOKED, SESSIONS_REVOKED, TOKEN_CREATED, TOKEN_REVOKED, USER_CREATED,
           USER_DELETED, MESSAGE_DELETED, MESSAGES_DELETED, ADDRESS_CREATED, ADDRESS_DELETED, DOMAIN_ASSIGNED,
           DOMAIN_REMOVED, TIER_CREATED, TIER_UPDATED, ACCOUNT_CREATED, ACCOUNT_UPDATED, ACCOUNT_DELETED, KEYS_ROTATED)
ACTIONS += (WEBHOOK_CREATED, WEBHOOK_UPDATED, WEBHOOK_DELETED, WEBHOOK_REPLAYED)
EMAIL_RETRIED = "email.retried"        # a platform admin queued an outbound mail again
EMAILS_PROCESSED = "emails.processed"  # a platform admin ran the outbound queue now
ACTIONS += (EMAIL_RETRIED, EMAILS_PROCESSED)
# Platform administration (the /admin API and `logmail admin`). Changes to one organisation are
# entered in its own log, so its admins see them; what concerns no one organisation (reads, tiers,
# revoking everyone's sessions) and the deletion of an organisation (its log goes with it), in the
# administrator's. `logmail admin` has no user or token: its entries say {"via": "cli", "operator"}.
ADMIN_VIEWED = "admin.viewed"  # a platform admin read an /admin endpoint: {method, path, query}
ORGANIZATION_CREATED = "organization.created"
ORGANIZATION_SUSPENDED = "organization.suspended"
ORGANIZATION_UNSUSPENDED = "organization.unsuspended"
ORGANIZATION_TIER_CHANGED = "organization.tier_changed"
ORGANIZATION_DELETED = "organization.deleted"
OWNERSHIP_TRANSFERRED = "organization.ownership_transferred"
PLATFORM_ADMIN_GRANTED = "user.platform_admin_granted"
ACTIONS += (ADMIN_VIEWED, ORGANIZATION_CREATED, ORGANIZATION_SUSPENDED, ORGANIZATION_UNSUSPENDED,
            ORGANIZATION_TIER_CHANGED, ORGANIZATION_DELETED, OWNERSHIP_TRANSFERRED, PLATFORM_ADMIN_GRANTED)

# Billing (logmail.services.billing). Changes Stripe's events make have no user or token behind them:
# their details say {"via": "stripe", "eventId", "eventType"}; the billing job's say {"via": "schedule"}.
BILLING_CHECKOUT_CREATED = "billing.checkout_created"
BILLING_SUBSCRIPTION_CHANGED = "billing.subscription_changed"  # {"changes": {field: [before, after]}}
BILLING_PAYMENT_FAILED = "billing.payment_failed"
BILLING_TIER_CHANGED = "billing.tier_changed"                  # {"from", "to"}
BILLING_DOWNGRADE_SCHEDULED = "billing.downgrade_scheduled"    # {"tier", "at"}
ACTIONS += (BILLING_CHECKOUT_CREATED, BILLING_SUBSCRIPTION_CHANGED, BILLING_PAYMENT_FAILED, BILLING_TIER_CHANGED,
            BILLING_DOWNGRADE_SCHEDULED)


class AuditLog:
    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self.db = db
        self._clock = clock

    def add(self, session: Session, who: Principal, action: str, *, target_type: str | None = None,
            target_id: str | None = None, details: dict[str, Any] | None = None,
            organization_id: int | None = None) -> None:
        """Append an entry for ``who`` inside the caller's transaction, so it commits with the change.

        It goes to the caller's organisation unless ``organization_id`` names the one acted on.
        """
        if who.method == METHOD_CLI:  # no user or token did it: say who at the command line did
            details = {**(details or {}), "via": "cli", "operator": who.user_agent}
        repo.add_entry(session, organization_id or who.organization_id, action=action, created_at=self._clock(),
                       actor_user_uuid=who.user_uuid, actor_token_uuid=who.token_uuid, target_type=target_type,
                       target_id=target_id, details=details, ip=who.client_ip)

    def list(self, who: Principal, flt: repo.AuditFilter, *, limit: int, offset: int,
             ) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_entries(session, who.organization_id, flt, limit=limit, offset=offset)
        return [entry_json(r) for r in rows], total

    def list_all(self, who: Principal, flt: repo.AuditFilter, *, organization_uuid: str | None, limit: int,
                 offset: int) -> tuple[list[dict[str, Any]], int]:
        """Every organisation's entries (or one's), for platform admins: each names its organisation."""
        if not who.is_platform_admin:
            raise ForbiddenError("only platform admins may read every organisation's audit log")
        with self.db.read() as session:
            rows, total = repo.list_all_entries(session, flt, organization_uuid=organization_uuid, limit=limit,
                                                offset=offset)
        return [{**entry_json(r), "organizationId": org_uuid} for r, org_uuid in rows], total


def entry_json(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.uuid, "action": row.action, "actorUserId": row.actor_user_uuid,
            "actorTokenId": row.actor_token_uuid, "targetType": row.target_type, "targetId": row.target_id,
            "details": row.details, "ip": row.ip, "createdAt": row.created_at}
