"""Ending sessions for platform administrators: one user's, one organisation's, or everyone's.

A revoked session stops working at once: access tokens are checked against their session
(:meth:`SessionService.live`), whose cached answer is dropped here, in this process and in the shared
cache (Redis) every daemon reads. A daemon on in-memory caches (one machine, no Redis) that is not
this process keeps its answer for at most ten seconds: ``logmail admin`` run beside such a daemon is
that case.

Revoking sessions never revokes API tokens: they are credentials of scripts, revoked one by one
(``DELETE /tokens/{id}``, ``logmail admin tokens revoke``), or all of a user's when the user is
deleted. The emergency ``revoke-all`` therefore logs every person out, the caller included, while
integrations keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session

from logmail.errors import ForbiddenError, NotFoundError
from logmail.services import audit as actions
from logmail.services import security_events as ev
from logmail.services.audit import AuditLog
from logmail.services.devices import Client
from logmail.services.principal import Principal
from logmail.services.security_events import SecurityEvents
from logmail.services.sessions import SessionService
from logmail.services.tokens import TokenAuthenticator
from logmail.services.users import trusted_headers_key
from logmail.store import admin as repo
from logmail.store import users as users_repo
from logmail.store.cache import Cache
from logmail.store.database import Database

REASON = "admin_revoked"


def require_platform_admin(who: Principal) -> None:
    if not who.is_platform_admin:
        raise ForbiddenError("only platform admins may do this")


class SessionAdmin:
    def __init__(self, db: Database, sessions: SessionService, tokens: TokenAuthenticator, cache: Cache,
                 audit: AuditLog, events: SecurityEvents, clock: Callable[[], int]) -> None:
        self.db = db
        self.sessions = sessions
        self.tokens = tokens
        self.cache = cache
        self.audit = audit
        self.events = events
        self._clock = clock

    # -- the three revocations -------------------------------------------------------------------

    def revoke_user(self, who: Principal, user_uuid: str) -> dict[str, Any]:
        require_platform_admin(who)
        with self.db.write() as session:
            found = repo.user_by_uuid(session, user_uuid)
            if found is None:
                raise NotFoundError("user not found")
            user, org = found
            ended = self.end_sessions(session, who, repo.open_sessions(session, user_id=user.id))
            self.audit.add(session, who, actions.SESSIONS_REVOKED, target_type="user", target_id=user.uuid,
                           details={"scope": "user", "count": len(ended)}, organization_id=org.id)
        self.forget(sessions=ended)
        return {"revoked": len(ended), "userId": user.uuid}

    def revoke_organization(self, who: Principal, organization_uuid: str) -> dict[str, Any]:
        require_platform_admin(who)
        with self.db.write() as session:
            org = users_repo.organization_by_uuid(session, organization_uuid)
            if org is None:
                raise NotFoundError("organisation not found")
            ended = self.end_sessions(session, who, repo.open_sessions(session, organization_id=org.id))
            self.audit.add(session, who, actions.SESSIONS_REVOKED, target_type="organization", target_id=org.uuid,
                           details={"scope": "organization", "count": len(ended)}, organization_id=org.id)
        self.forget(sessions=ended)
        return {"revoked": len(ended), "organizationId": org.uuid}

    def revoke_all(self, who: Principal) -> dict[str, Any]:
        """Emergency: every session of every user ends, the caller's own included. One audit entry
        and no per-session security events or notifications (there may be very many)."""
        require_platform_admin(who)
        with self.db.write() as session:
            ended = self.end_sessions(session, who, repo.open_sessions(session), events=False, notify=False)
            self.audit.add(session, who, actions.SESSIONS_REVOKED, target_type="platform",
                           details={"scope": "all", "count": len(ended)})
        self.forget(sessions=ended)
        return {"revoked": len(ended)}

    # -- the parts, shared with user and organisation administration ----------------------------------

    def end_sessions(self, session: Session, who: Principal, rows: list[Any], *, events: bool = True,
                     notify: bool = True) -> list[str]:
        """End these sessions (rows of ``repo.open_sessions``) inside the caller's transaction,
        recording a security event per session (``events``) and telling each user once (``notify``).
        Returns the session uuids, for :meth:`forget` after the commit."""
        now = self._clock()
        repo.revoke_sessions(session, [r.id for r in rows], now, REASON)
        per_user: dict[int, int] = {}
        for r in rows:
            per_user[r.user_id] = per_user.get(r.user_id, 0) + 1
            if events:
                self.events.add(session, ev.SESSION_REVOKED, Client(who.client_ip, who.user_agent),
                                organization_id=r.organization_id, user_id=r.user_id, user_uuid=r.user_uuid,
                                session_uuid=r.uuid, details={"reason": REASON, "by": who.user_uuid or who.method})
        notifications = self.sessions.notifications
        if notify and notifications is not None:
            for user_id, count in per_user.items():
                notifications.sessions_revoked(user_id, REASON, count=count, session=session,
                                               key=f"admin:{now}:{user_id}")
        return [r.uuid for r in rows]

    def forget(self, *, sessions: Iterable[str] = (), token_hashes: Iterable[str] = (),
               trusted: Iterable[tuple[str, str]] = ()) -> None:
        """Drop cached decisions about sessions, API tokens (by hash) and trusted-header pairs
        (organisation uuid, user uuid), so what was revoked or changed takes effect at once."""
        self.sessions.forget(*sessions)
        for digest in token_hashes:
            self.tokens.forget_hash(digest)
        for organization_uuid, user_uuid in trusted:
            self.cache.delete(trusted_headers_key(organization_uuid, user_uuid))
