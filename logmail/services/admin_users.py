"""Users of every organisation, as platform administrators manage them (``/admin/users``,
``logmail admin users`` and ``create-admin``).

Deleting a user revokes their sessions and API tokens first, in a transaction of its own whose
effect is immediate (cached decisions dropped), and only then deletes the row; their mailbox
accounts, notifications and refresh tokens go with it (ON DELETE CASCADE), while the mail those
accounts imported stays with the organisation. An organisation is never left without an owner: the
last owner is deleted only with an instruction, ``transfer_to`` (another user of the organisation
becomes its owner) or ``organization="delete"`` (the organisation goes, with all its data). The
built-in organisation belongs to the installation (the operator and ``owner.token`` act for it), so
its last owner needs neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logmail.errors import BadRequestError, ConflictError, NotFoundError
from logmail.services import audit as actions
from logmail.services.admin_orgs import OrganizationAdmin
from logmail.services.admin_sessions import SessionAdmin, require_platform_admin
from logmail.services.audit import AuditLog
from logmail.services.passwords import Passwords
from logmail.services.principal import ROLES, Principal
from logmail.services.users import normalise_email, user_json
from logmail.store import admin as repo
from logmail.store import users as users_repo
from logmail.store.database import Database
from logmail.store.models import Organization, User

DELETE_ORGANIZATION = "delete"


def admin_user_json(user: User, org: Organization, **extra: Any) -> dict[str, Any]:
    return {**user_json(user, org), "organisationName": org.name, "organisationStatus": org.status, **extra}


class UserAdmin:
    def __init__(self, db: Database, passwords: Passwords, audit: AuditLog, sessions: SessionAdmin,
                 organizations: OrganizationAdmin, clock: Callable[[], int], *, home_organization_id: int) -> None:
        self.db = db
        self.passwords = passwords
        self.audit = audit
        self.sessions = sessions
        self.organizations = organizations
        self._clock = clock
        self.home_organization_id = home_organization_id  # the built-in one: where new admins go by default

    # -- reading ---------------------------------------------------------------------------------

    def list(self, who: Principal, *, email: str | None = None, organization_uuid: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Users of every organisation (or one), oldest first; ``email`` matches any part of the address."""
        require_platform_admin(who)
        with self.db.read() as session:
            org_id = None
            if organization_uuid is not None:
                org = users_repo.organization_by_uuid(session, organization_uuid)
                if org is None:
                    return [], 0
                org_id = org.id
            rows, total = repo.list_users(session, email=email, organization_id=org_id, limit=limit, offset=offset)
            return [admin_user_json(u, o) for u, o in rows], total

    def get(self, who: Principal, user_uuid: str) -> dict[str, Any]:
        require_platform_admin(who)
        with self.db.read() as session:
            user, org = self._find(session, user_uuid)
            return admin_user_json(user, org, **repo.user_facts(session, user.id, self._clock()))

    def find(self, who: Principal, ident: str) -> str:
        """The uuid of the user ``ident`` names: a uuid or an email address (for the command line)."""
        require_platform_admin(who)
        with self.db.read() as session:
            found = repo.user_by_uuid(session, ident.lower())
            if found is None and "@" in ident:
                found = users_repo.by_email(session, ident.strip().lower())
        if found is None:
            raise NotFoundError(f"no user has the id or email {ident!r}")
        return found[0].uuid

    # -- platform administrators -----------------------------------------------------------------

    def create_admin(self, who: Principal, email: str, password: str, *, organization_uuid: str | None = None,
                     role: str = "owner") -> dict[str, Any]:
        """A new user with the platform-admin flag, in the built-in organisation unless one is named."""
        require_platform_admin(who)
        if role not in ROLES:
            raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
        email = normalise_email(email)
        self.passwords.check_policy(password)
        password_hash = self.passwords.hash(password)
        with self.db.write() as session:
            if organization_uuid is not None:
                org = users_repo.organization_by_uuid(session, organization_uuid.lower())
                if org is None:
                    raise NotFoundError("organisation not found")
            else:
                org = session.get(Organization, self.home_organization_id)
            if users_repo.email_taken(session, email):
                raise ConflictError("a user with this email already exists")
            user = User(organization_id=org.id, email=email, password_hash=password_hash, role=role,
                        is_platform_admin=True, created_at=self._clock())
            session.add(user)
            session.flush()
            self.audit.add(session, who, actions.USER_CREATED, target_type="user", target_id=user.uuid,
                           details={"role": role}, organization_id=org.id)
            self.audit.add(session, who, actions.PLATFORM_ADMIN_GRANTED, target_type="user", target_id=user.uuid,
                           organization_id=org.id)
            return admin_user_json(user, org)

    def grant_admin(self, who: Principal, user_uuid: str) -> dict[str, Any]:
        """Give an existing user the platform-admin flag (their password stays as it is)."""
        require_platform_admin(who)
        with self.db.write() as session:
            user, org = self._find(session, user_uuid)
            if user.is_platform_admin:
                raise ConflictError("the user is a platform admin already")
            user.is_platform_admin = True
            self.audit.add(session, who, actions.PLATFORM_ADMIN_GRANTED, target_type="user", target_id=user.uuid,
                           organization_id=org.id)
            caches = self._cached(session, user, org)
        self.sessions.forget(**caches)  # live sessions and tokens carry the flag in their cached decision
        return admin_user_json(user, org)

    # -- deleting --------------------------------------------------------------------------------

    def delete(self, who: Principal, user_uuid: str, *, organization: str | None = None,
               transfer_to: str | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Delete a user of any organisation (see the module's docstring for the last owner)."""
        require_platform_admin(who)
        if organization not in (None, DELETE_ORGANIZATION):
            raise BadRequestError("organization may only be 'delete'")
        if organization and transfer_to:
            raise BadRequestError("give either transferTo or organization=delete, not both")
        with self.db.read() as session:
            user, org = self._find(session, user_uuid)
            if user.id == who.user_id:
                raise ConflictError("platform admins cannot delete themselves here; ask another one")
            last_owner = self._last_owner(session, user, org)
            heir = self._heir(session, user, transfer_to) if transfer_to else None
        if organization == DELETE_ORGANIZATION:
            if not last_owner:
                raise BadRequestError("organization=delete is only for the last owner of an organisation; "
                                      "this user can simply be deleted")
            gone = self.organizations.delete(who, org.uuid, progress=progress,
                                             because={"lastOwnerDeleted": user.uuid})
            return {"id": user.uuid, "organization": {**gone, "action": "deleted"}}
        if last_owner and heir is None:
            raise ConflictError("this is the last owner of the organisation; pass transferTo=<user id> to make "
                                "another of its users the owner, or organization=delete to delete the "
                                "organisation with all its data")
        self._revoke_everything(who, user, org)
        with self.db.write() as session:
            user = session.get(User, user.id)
            if user is None:
                raise NotFoundError("user not found")
            caches: dict[str, list] = {}
            if heir is not None:
                heir = session.get(User, heir.id)
                if heir is None or heir.organization_id != org.id:
                    raise ConflictError("the user to transfer to has left the organisation")
                heir.role = "owner"
                self.audit.add(session, who, actions.OWNERSHIP_TRANSFERRED, target_type="user", target_id=heir.uuid,
                               details={"from": user.uuid}, organization_id=org.id)
                caches = self._cached(session, heir, org)  # their cached role changed
            elif self._last_owner(session, user, org):  # someone else left meanwhile
                raise ConflictError("this has become the last owner of the organisation; try again with "
                                    "transferTo or organization=delete")
            self.audit.add(session, who, actions.USER_DELETED, target_type="user", target_id=user.uuid,
                           details={"role": user.role, **({"transferredTo": heir.uuid} if heir else {})},
                           organization_id=org.id)
            session.delete(user)
        self.sessions.forget(**caches)
        outcome = {"id": org.uuid, "action": "transferred", "owner": heir.uuid} if heir else \
            {"id": org.uuid, "action": "kept"}
        return {"id": user.uuid, "organization": outcome}

    # -- helpers ---------------------------------------------------------------------------------

    def _revoke_everything(self, who: Principal, user: User, org: Organization) -> None:
        """Sessions and tokens revoked and forgotten before the row goes: nothing works in between."""
        with self.db.write() as session:
            ended = self.sessions.end_sessions(session, who, repo.open_sessions(session, user_id=user.id),
                                               notify=False)
            hashes = repo.revoke_tokens(session, org.id, self._clock(), user_id=user.id)
        self.sessions.forget(sessions=ended, token_hashes=hashes, trusted=[(org.uuid, user.uuid)])

    @staticmethod
    def _find(session, user_uuid: str) -> tuple[User, Organization]:
        found = repo.user_by_uuid(session, user_uuid.lower())
        if found is None:
            raise NotFoundError("user not found")
        return found

    @staticmethod
    def _last_owner(session, user: User, org: Organization) -> bool:
        return user.role == "owner" and not org.is_builtin and users_repo.count_owners(session, org.id) <= 1

    @staticmethod
    def _heir(session, user: User, transfer_to: str) -> User:
        heir = users_repo.get(session, user.organization_id, transfer_to.lower())
        if heir is None or heir.id == user.id:
            raise BadRequestError("transferTo must name another user of the same organisation")
        return heir

    @staticmethod
    def _cached(session, user: User, org: Organization) -> dict[str, list]:
        sessions = [r.uuid for r in repo.open_sessions(session, user_id=user.id)]
        return {"sessions": sessions, "token_hashes": repo.token_hashes(session, org.id, user_id=user.id),
                "trusted": [(org.uuid, user.uuid)]}
