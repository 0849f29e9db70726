"""Users and their organisations: registration, the invitation path (admins creating users), removal."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from logmail.config import AuthSettings
from logmail.errors import BadRequestError, ConflictError, ForbiddenError
from logmail.services import audit as actions
from logmail.services.audit import AuditLog
from logmail.services.passwords import Passwords
from logmail.services.principal import METHOD_SESSION, ROLE_RANK, ROLES, Principal
from logmail.services.security_events import SecurityEvents
from logmail.services.sessions import SessionService
from logmail.services.tokens import TokenAuthenticator
from logmail.store import api_tokens as tokens_repo
from logmail.store import sessions as sessions_repo
from logmail.store import users as repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import Organization, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise BadRequestError("email must be an email address such as someone@example.com")
    return email


class UserService:
    def __init__(self, db: Database, passwords: Passwords, audit: AuditLog, events: SecurityEvents,
                 sessions: SessionService, tokens: TokenAuthenticator, settings: AuthSettings,
                 clock: Callable[[], int], cache: Cache) -> None:
        self.db = db
        self.cache = cache
        self.passwords = passwords
        self.audit = audit
        self.events = events
        self.sessions = sessions
        self.tokens = tokens
        self.settings = settings
        self._clock = clock
        # Platform mode: platform.default_tier. Local mode has no quotas, for any organisation.
        self.new_organisation_tier = "unlimited"

    def register(self, email: str, password: str, organisation_name: str, *, ip: str = "",
                 user_agent: str = "") -> dict[str, Any]:
        """A new organisation on the default tier, owned by a new user (only with open registration)."""
        if not self.settings.open_registration:
            raise ForbiddenError("registration is closed here; an administrator of your organisation can "
                                 "create your account")
        email = normalise_email(email)
        self.passwords.check_policy(password)
        name = organisation_name.strip()
        if not name:
            raise BadRequestError("organisationName must not be empty")
        password_hash = self.passwords.hash(password)  # slow: before the transaction, not inside it
        now = self._clock()
        with self.db.write() as session:
            created = repo.add_organization_with_owner(session, name=name, tier=self.new_organisation_tier,
                                                       email=email, password_hash=password_hash, now=now)
            if created is None:
                raise ConflictError("a user with this email already exists")
            org, user = created
            who = Principal(org.id, org.uuid, user.id, None, frozenset(), method=METHOD_SESSION,
                            user_uuid=user.uuid, role="owner", client_ip=ip, user_agent=user_agent)
            self.audit.add(session, who, actions.REGISTER, target_type="user", target_id=user.uuid)
        return {"user": user_json(user, org), "organisation": organisation_json(org)}

    def create(self, who: Principal, email: str, password: str, role: str,
               organisation_uuid: str | None = None) -> dict[str, Any]:
        """The invitation path: an admin or owner adds a user to their organisation."""
        _require_admin(who, "creating users")
        if role not in ROLES:
            raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
        if ROLE_RANK[role] > ROLE_RANK[who.ceiling_role]:
            raise ForbiddenError(f"{_a(who.ceiling_role)} cannot create {_a(role)}: nobody grants more than they hold")
        email = normalise_email(email)
        self.passwords.check_policy(password)
        password_hash = self.passwords.hash(password)
        now = self._clock()
        with self.db.write() as session:
            org = repo.organization(session, who.organization_id)
            if organisation_uuid and organisation_uuid != who.organization_uuid:
                other = repo.organization_by_uuid(session, organisation_uuid)
                if not who.is_platform_admin or other is None:
                    raise ForbiddenError("only platform administrators create users in other organisations")
                org = other
            if repo.email_taken(session, email):
                raise ConflictError("a user with this email already exists")
            user = User(organization_id=org.id, email=email, password_hash=password_hash, role=role, created_at=now)
            session.add(user)
            session.flush()
            self.audit.add(session, who, actions.USER_CREATED, target_type="user", target_id=user.uuid,
                           details={"role": role}, organization_id=org.id)
        return user_json(user, org)

    def list(self, who: Principal, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        _require_admin(who, "listing users")
        with self.db.read() as session:
            org = repo.organization(session, who.organization_id)
            rows, total = repo.list_users(session, who.organization_id, limit=limit, offset=offset)
        return [user_json(u, org) for u in rows], total

    def delete(self, who: Principal, user_uuid: str) -> None:
        """Remove a user with their sessions and tokens, which stop working at once."""
        _require_admin(who, "deleting users")
        with self.db.write() as session:
            user = repo.get(session, who.organization_id, user_uuid)
            if user is not None:
                if ROLE_RANK[user.role] > ROLE_RANK[who.ceiling_role]:
                    raise ForbiddenError(f"{_a(who.ceiling_role)} cannot delete {_a(user.role)}")
                if user.role == "owner" and repo.count_owners(session, who.organization_id) <= 1:
                    raise ConflictError("this is the organisation's last owner; make someone else owner first")
                session_uuids = [s.uuid for s in sessions_repo.open_for_user(session, who.organization_id, user.id)]
                token_hashes = tokens_repo.hashes_for_user(session, who.organization_id, user.id)
                self.audit.add(session, who, actions.USER_DELETED, target_type="user", target_id=user.uuid)
                session.delete(user)  # sessions, refresh tokens and API tokens go with it (ON DELETE CASCADE)
        if user is None:
            raise self.events.not_found(who, "user", user_uuid, "user not found")
        self.sessions.forget(*session_uuids)
        for digest in token_hashes:
            self.tokens.forget_hash(digest)
        self.cache.delete(trusted_headers_key(who.organization_uuid, user_uuid))


def trusted_headers_key(organization_uuid: str, user_uuid: str) -> str:
    """Where the decision about a pair of trusted headers is cached (see AuthService)."""
    return f"trusted:{organization_uuid}:{user_uuid}"


def _require_admin(who: Principal, what: str) -> None:
    if not who.can("admin"):
        raise ForbiddenError(f"{what} needs an admin or owner (or a token with the 'admin' scope)")


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def user_json(user: User, org: Organization) -> dict[str, Any]:
    return {"id": user.uuid, "email": user.email, "role": user.role, "organisationId": org.uuid,
            "isPlatformAdmin": user.is_platform_admin, "createdAt": user.created_at}


def organisation_json(org: Organization) -> dict[str, Any]:
    return {"id": org.uuid, "name": org.name, "tier": org.tier, "status": org.status, "createdAt": org.created_at}
