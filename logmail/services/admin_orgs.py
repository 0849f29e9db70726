"""Organisations and tiers as platform administrators manage them (``/admin/organizations``,
``/admin/tiers``, ``logmail admin orgs|tiers``).

Suspending an organisation refuses its mail at the door (550 5.7.1), its logins, sessions, API tokens
and trusted-header callers, and deletes nothing; unsuspending gives everything back. Both, and a
change of tier, take effect at once: the cached decisions of this process and of the shared cache
are dropped (see :mod:`logmail.services.admin_sessions` for processes on memory caches).

Deleting an organisation (only as the way to delete its last owner, see ``UserAdmin.delete``) first
suspends it and revokes every session and token, then deletes its mail with the content, in
batches, and finally the organisation row, which takes everything else of it along (users,
addresses, tokens, sessions, mailbox accounts, webhooks, usage, its audit log). The built-in
organisation is the installation's own: it is never suspended or deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from logmail.errors import BadRequestError, ConflictError, NotFoundError
from logmail.services import audit as actions
from logmail.services.admin_sessions import SessionAdmin, require_platform_admin
from logmail.services.audit import AuditLog
from logmail.services.passwords import Passwords
from logmail.services.policy import PolicyService
from logmail.services.principal import Principal
from logmail.services.tiers import Tier, TierService
from logmail.services.users import normalise_email
from logmail.store import admin as repo
from logmail.store import messages as messages_repo
from logmail.store import users as users_repo
from logmail.store.content import ContentStore
from logmail.store.database import Database
from logmail.store.models import Message, Organization, User

log = logging.getLogger("logmail.admin")

STATUSES = ("active", "suspended")
DELETE_BATCH = 500


def organization_json(org: Organization, **extra: Any) -> dict[str, Any]:
    return {"id": org.uuid, "name": org.name, "status": org.status, "tier": org.tier, "isBuiltin": org.is_builtin,
            "createdAt": org.created_at, "suspendedAt": org.suspended_at, "suspendedReason": org.suspended_reason,
            "messageCount": org.message_count, "storageBytes": org.storage_bytes, **extra}


class OrganizationAdmin:
    def __init__(self, db: Database, content: ContentStore, tiers: TierService, policy: PolicyService,
                 passwords: Passwords, audit: AuditLog, sessions: SessionAdmin, clock: Callable[[], int], *,
                 default_tier: str) -> None:
        self.db = db
        self.content = content
        self.tiers = tiers
        self.policy = policy
        self.passwords = passwords
        self.audit = audit
        self.sessions = sessions
        self._clock = clock
        self.default_tier = default_tier

    # -- reading ---------------------------------------------------------------------------------

    def list(self, who: Principal, *, search: str | None = None, status: str | None = None,
             tier: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        require_platform_admin(who)
        with self.db.read() as session:
            rows, total = repo.list_organizations(session, search=search, status=status, tier=tier, limit=limit,
                                                  offset=offset)
            return [organization_json(org, userCount=users) for org, users in rows], total

    def get(self, who: Principal, organization_uuid: str) -> dict[str, Any]:
        require_platform_admin(who)
        with self.db.read() as session:
            org = self._find(session, organization_uuid)
            facts = repo.organization_facts(session, org.id)
            owners = [{"id": u.uuid, "email": u.email} for u in repo.owners(session, org.id)]
            return organization_json(org, userCount=facts["users"], addressCount=facts["addresses"],
                                     apiTokenCount=facts["apiTokens"], owners=owners)

    def find(self, who: Principal, ident: str) -> str:
        """The uuid of the organisation ``ident`` names: its uuid, or its name when only one has it."""
        require_platform_admin(who)
        with self.db.read() as session:
            org = users_repo.organization_by_uuid(session, ident.lower())
            if org is not None:
                return org.uuid
            named = repo.organizations_named(session, ident)
        if len(named) > 1:
            raise ConflictError(f"{len(named)} organisations are called {ident!r}; name one by its id")
        if not named:
            raise NotFoundError(f"no organisation has the id or name {ident!r}")
        return named[0].uuid

    # -- changing --------------------------------------------------------------------------------

    def create(self, who: Principal, name: str, *, owner_email: str, owner_password: str,
               tier: str | None = None) -> dict[str, Any]:
        """A new organisation with its first owner (an organisation never exists without one)."""
        require_platform_admin(who)
        name = name.strip()
        if not name or len(name) > 200:
            raise BadRequestError("the organisation's name must be 1-200 characters")
        tier = self._tier(tier or self.default_tier).name
        email = normalise_email(owner_email)
        self.passwords.check_policy(owner_password)
        password_hash = self.passwords.hash(owner_password)
        now = self._clock()
        with self.db.write() as session:
            created = users_repo.add_organization_with_owner(session, name=name, tier=tier, email=email,
                                                             password_hash=password_hash, now=now)
            if created is None:
                raise ConflictError("a user with this email already exists")
            org, owner = created
            self.audit.add(session, who, actions.ORGANIZATION_CREATED, target_type="organization",
                           target_id=org.uuid, details={"name": name, "tier": tier, "owner": owner.uuid},
                           organization_id=org.id)
            return organization_json(org, userCount=1, owners=[{"id": owner.uuid, "email": owner.email}])

    def suspend(self, who: Principal, organization_uuid: str, reason: str | None = None) -> dict[str, Any]:
        require_platform_admin(who)
        reason = (reason or "").strip()[:200] or None
        with self.db.write() as session:
            org = self._find(session, organization_uuid)
            self._refuse_own(who, org, "suspend")
            if org.status == "suspended":
                raise ConflictError("the organisation is already suspended")
            org.status, org.suspended_at, org.suspended_reason = "suspended", self._clock(), reason
            self.audit.add(session, who, actions.ORGANIZATION_SUSPENDED, target_type="organization",
                           target_id=org.uuid, details={"reason": reason}, organization_id=org.id)
            caches = self._cached(session, org)
        self._forget(org, *caches)
        return self.get(who, org.uuid)  # the same answer as GET: users, addresses and owners included

    def unsuspend(self, who: Principal, organization_uuid: str) -> dict[str, Any]:
        require_platform_admin(who)
        with self.db.write() as session:
            org = self._find(session, organization_uuid)
            if org.status != "suspended":
                raise ConflictError("the organisation is not suspended")
            org.status, org.suspended_at, org.suspended_reason = "active", None, None
            self.audit.add(session, who, actions.ORGANIZATION_UNSUSPENDED, target_type="organization",
                           target_id=org.uuid, organization_id=org.id)
            caches = self._cached(session, org)  # "refused" was cached too
        self._forget(org, *caches)
        return self.get(who, org.uuid)  # the same answer as GET: users, addresses and owners included

    def set_tier(self, who: Principal, organization_uuid: str, tier: str) -> dict[str, Any]:
        require_platform_admin(who)
        new = self._tier(tier)
        with self.db.write() as session:
            org = self._find(session, organization_uuid)
            old, org.tier = org.tier, new.name
            self.audit.add(session, who, actions.ORGANIZATION_TIER_CHANGED, target_type="organization",
                           target_id=org.uuid, details={"from": old, "to": new.name}, organization_id=org.id)
        self.policy.forget(organization_id=org.id)
        return self.get(who, org.uuid)

    def create_tier(self, who: Principal, body: dict[str, Any]) -> Tier:
        require_platform_admin(who)
        tier = self.tiers.create(body)
        self._audit_tier(who, actions.TIER_CREATED, tier)
        return tier

    def update_tier(self, who: Principal, name: str, body: dict[str, Any]) -> Tier:
        require_platform_admin(who)
        tier = self.tiers.update(name, body)
        self._audit_tier(who, actions.TIER_UPDATED, tier)
        self.policy.forget()
        return tier

    def delete(self, who: Principal, organization_uuid: str, *, because: dict[str, Any] | None = None,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Delete the organisation with all its data, content included; ``progress`` is told how many
        messages each batch deleted."""
        require_platform_admin(who)
        now = self._clock()
        with self.db.write() as session:  # first, nothing of it works any more
            org = self._find(session, organization_uuid)
            self._refuse_own(who, org, "delete")
            org.status, org.suspended_at, org.suspended_reason = "suspended", now, "being deleted"
            ended = self.sessions.end_sessions(session, who, repo.open_sessions(session, organization_id=org.id),
                                               events=False, notify=False)
            repo.revoke_tokens(session, org.id, now)
            caches = self._cached(session, org)
        self._forget(org, ended + caches[0], *caches[1:])
        deleted = 0
        while True:  # then its mail, in batches, content after each commit
            with self.db.write() as session:
                ids = messages_repo.received_before(session, org.id, 2**62, DELETE_BATCH)
                keys = messages_repo.delete_messages(session, org.id, ids)
            if not ids:
                break
            self._delete_content(keys)
            deleted += len(ids)
            if progress is not None:
                progress(len(ids))
        with self.db.write() as session:  # and the rest with the row (ON DELETE CASCADE)
            late = list(session.execute(select(Message.id).where(Message.organization_id == org.id)).scalars())
            keys = messages_repo.delete_messages(session, org.id, late)  # queued before the suspension
            users = repo.organization_facts(session, org.id)["users"]
            session.delete(session.get(Organization, org.id))
            details = {"name": org.name, "messages": deleted + len(late), "users": users, **(because or {})}
            self.audit.add(session, who, actions.ORGANIZATION_DELETED, target_type="organization",
                           target_id=org.uuid, details=details)
        self._delete_content(keys)
        self.policy.forget()  # its addresses, too
        log.info("organisation %s deleted with %d message(s)", org.uuid, deleted + len(late))
        return {"id": org.uuid, "name": org.name, "deleted": True, "messagesDeleted": deleted + len(late)}

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _find(session, organization_uuid: str) -> Organization:
        org = users_repo.organization_by_uuid(session, organization_uuid.lower())
        if org is None:
            raise NotFoundError("organisation not found")
        return org

    @staticmethod
    def _refuse_own(who: Principal, org: Organization, verb: str) -> None:
        if org.is_builtin:
            done = {"suspend": "suspended", "delete": "deleted"}[verb]
            raise ConflictError(f"the built-in organisation belongs to the installation; it cannot be {done}")
        if org.id == who.organization_id:
            raise ConflictError(f"you cannot {verb} your own organisation")

    def _tier(self, name: str) -> Tier:
        try:
            return self.tiers.require(name)
        except NotFoundError as exc:  # a bad value in the request, not a missing resource
            raise BadRequestError(exc.message) from None

    @staticmethod
    def _cached(session, org: Organization) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """What the caches may hold about the organisation's callers: sessions, tokens, header pairs."""
        sessions = [r.uuid for r in repo.open_sessions(session, organization_id=org.id)]
        users = session.execute(select(User.uuid).where(User.organization_id == org.id)).scalars()
        return sessions, repo.token_hashes(session, org.id), [(org.uuid, u) for u in users]

    def _forget(self, org: Organization, sessions: list[str], token_hashes: list[str],
                trusted: list[tuple[str, str]]) -> None:
        self.policy.forget(organization_id=org.id)
        self.sessions.forget(sessions=sessions, token_hashes=token_hashes, trusted=trusted)

    def _audit_tier(self, who: Principal, action: str, tier: Tier) -> None:
        with self.db.write() as session:
            self.audit.add(session, who, action, target_type="tier", target_id=None,
                           details={"tier": tier.name, **tier.to_json()})

    def _delete_content(self, keys: list[str]) -> None:
        try:
            self.content.delete_many(keys)
        except Exception:  # the rows are gone; unreachable blobs are a space leak, not a fault
            log.warning("could not remove %d content blob(s) of a deleted organisation", len(keys))
