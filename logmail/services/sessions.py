"""Login sessions: rotating refresh tokens, risk checks, limits and revocation.

A session is one login on one device and the family of refresh tokens that descends from it. Each
refresh retires the presented token and issues its successor. The rules, in the order a refresh
applies them:

1. the session must not have ended, nor passed its absolute limit (fixed at login; rotation never
   moves it) or its idle limit (time since the last refresh);
2. a token that was already rotated is *reuse*: the whole family is revoked and the session ends,
   except for the token rotated immediately before the current one, within
   ``refresh_reuse_leeway_seconds``: that is two tabs racing, and it gets a fresh pair from the same
   family (the current token is rotated in turn, so the last response wins; a browser's shared
   cookie jar converges on it);
3. the refresh token itself must not have expired;
4. the device (browser family and platform, see :mod:`logmail.services.devices`) must be the one
   that logged in: another device must log in again, and the session is revoked;
5. a new network address alone keeps the session, and is recorded.

Every refusal, every race accepted and every change of network is a security event. Access tokens
name their session; :meth:`SessionService.live` answers "is it still alive?" from the shared cache
for a few seconds, and every revocation deletes that cache entry, so it takes effect at once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from logmail.config import AuthSettings
from logmail.errors import BadRequestError, ForbiddenError, UnauthorisedError
from logmail.services import audit as actions
from logmail.services import security_events as ev
from logmail.services.audit import AuditLog
from logmail.services.devices import Client
from logmail.services.jwt_tokens import AccessTokens
from logmail.services.principal import Principal
from logmail.services.security_events import SecurityEvents
from logmail.services.tokens import hash_token
from logmail.store import sessions as repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import Organization, RefreshToken, User, UserSession

REFRESH_PREFIX = "lmr_"
DAY_MS = 86_400_000
_LIVE_CACHE_SECONDS = 10.0
INVALID_REFRESH = "the refresh token is invalid; log in again"
# Sessions ended for the user rather than by them: they are told (a notification and, by preference, mail).
_NOTIFIED_REASONS = ("refresh_token_reused", "device_changed")
ENDED = "the session has ended; log in again"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int            # seconds
    refresh_token: str
    refresh_expires_at: int    # epoch ms
    session_uuid: str


@dataclass(frozen=True, slots=True)
class LiveSession:
    """What an access token's session check yields; cached briefly in the shared cache."""

    session_id: int
    session_uuid: str
    organization_id: int
    organization_uuid: str
    user_id: int
    user_uuid: str
    role: str
    is_platform_admin: bool
    expires_at: int


class SessionService:
    def __init__(self, db: Database, cache: Cache, clock: Callable[[], int], events: SecurityEvents,
                 audit: AuditLog, access: AccessTokens, settings: AuthSettings) -> None:
        self.db = db
        self.cache = cache
        self._clock = clock
        self.events = events
        self.audit = audit
        self.access = access
        self.settings = settings
        # Tells users of new-device logins and of sessions ended for them (NotificationService); optional.
        self.notifications = None

    # -- starting and refreshing ---------------------------------------------------------------

    def start(self, session: Session, user: User, org: Organization, client: Client) -> IssuedTokens:
        """A new session for ``user`` inside the caller's (login) transaction."""
        now = self._clock()
        device = client.device
        # A device is new when none of the user's sessions, live or ended, used it; a first login ever is not news.
        known = set(session.execute(select(UserSession.device_fingerprint)
                                    .where(UserSession.user_id == user.id).distinct()).scalars())
        row = UserSession(organization_id=org.id, user_id=user.id, device_fingerprint=device.fingerprint,
                          device_label=device.label, user_agent=client.user_agent[:300], created_ip=client.ip[:45],
                          last_ip=client.ip[:45], created_at=now, last_seen_at=now,
                          expires_at=now + self.settings.session_absolute_limit_days * DAY_MS)
        session.add(row)
        session.flush()
        plain, refresh_row = self._new_refresh_token(session, row, now)
        if known and device.fingerprint not in known and self.notifications is not None:
            self.notifications.new_device_login(user.id, device.label, client.ip, session_uuid=row.uuid,
                                                session=session)
        access, expires_in = self.access.issue(user.uuid, org.uuid, row.uuid)
        return IssuedTokens(access, expires_in, plain, refresh_row.expires_at, row.uuid)

    def refresh(self, presented: str, client: Client) -> IssuedTokens:
        """Rotate ``presented`` into a new pair, or raise UnauthorisedError (after recording why)."""
        now = self._clock()
        with self.db.write() as session:
            found = repo.refresh_token_by_hash(session, hash_token(presented))
            if found is None:
                raise UnauthorisedError(INVALID_REFRESH)
            family = repo.lock_session(session, found.organization_id, found.session_id)
            # Read again under the family's lock: a concurrent refresh may have just rotated it.
            token = session.execute(select(RefreshToken).where(RefreshToken.id == found.id)
                                    .execution_options(populate_existing=True)).scalar_one()
            user = session.get(User, family.user_id)
            org = session.get(Organization, family.organization_id)
            if org.status != "active":
                refusal: str | None = "the organisation is suspended"
            else:
                refusal, to_rotate = self._judge(session, family, token, client, now)
            if refusal is None:
                family.last_seen_at = now
                plain, new_row = self._rotate(session, family, to_rotate, now)
        # Outside the transaction: a refusal that ended the session has been committed with its event.
        if refusal is not None:
            self.forget(family.uuid)
            raise UnauthorisedError(refusal)
        access, expires_in = self.access.issue(user.uuid, org.uuid, family.uuid)
        return IssuedTokens(access, expires_in, plain, new_row.expires_at, family.uuid)

    def _judge(self, session: Session, family: UserSession, token: RefreshToken, client: Client,
               now: int) -> tuple[str | None, RefreshToken]:
        """Why this refresh is refused (None: allowed), and which token to rotate."""
        s = self.settings

        def end(reason: str, event: str, message: str, **details: Any) -> tuple[str, RefreshToken]:
            repo.revoke(session, family.organization_id, [family.id], now, reason)
            self._event(session, event, client, family, {"reason": reason, **details})
            if reason in _NOTIFIED_REASONS and self.notifications is not None:
                self.notifications.sessions_revoked(family.user_id, reason, key=family.uuid, details=details,
                                                    session=session)
            return message, token

        if family.revoked_at is not None:
            return ENDED, token
        if now >= family.expires_at:
            return end("absolute_limit", ev.SESSION_EXPIRED, ENDED)
        if now - family.last_seen_at >= s.session_idle_limit_days * DAY_MS:
            return end("idle_limit", ev.SESSION_EXPIRED, ENDED)
        if token.rotated_at is not None:
            current = repo.current_refresh_token(session, family.organization_id, family.id)
            racing = (current is not None and token.successor_id == current.id
                      and now - token.rotated_at <= s.refresh_reuse_leeway_seconds * 1000)
            if not racing:
                return end("refresh_token_reused", ev.REFRESH_TOKEN_REUSED,
                           "this refresh token was already used, so the session has been ended for safety; "
                           "log in again")
            self._event(session, ev.REFRESH_RACE_ACCEPTED, client, family,
                        {"secondsSinceRotation": round((now - token.rotated_at) / 1000, 3)})
            token = current
        if token.expires_at <= now:
            return end("refresh_token_expired", ev.SESSION_EXPIRED, ENDED)
        device = client.device
        if device.fingerprint != family.device_fingerprint:
            return end("device_changed", ev.DEVICE_CHANGED,
                       "this session was started on another device; log in again",
                       was=family.device_label, now=device.label)
        if client.ip and client.ip != family.last_ip:
            self._event(session, ev.NETWORK_CHANGED, client, family, {"from": family.last_ip, "to": client.ip})
            family.last_ip = client.ip[:45]
        return None, token

    def _rotate(self, session: Session, family: UserSession, old: RefreshToken, now: int,
                ) -> tuple[str, RefreshToken]:
        plain, new = self._new_refresh_token(session, family, now)
        old.rotated_at = now
        old.successor_id = new.id
        return plain, new

    def _new_refresh_token(self, session: Session, family: UserSession, now: int) -> tuple[str, RefreshToken]:
        plain = REFRESH_PREFIX + secrets.token_urlsafe(32)
        # Never past the session's absolute limit: rotation cannot extend a session.
        expires = min(now + self.settings.refresh_token_lifetime_days * DAY_MS, family.expires_at)
        row = RefreshToken(organization_id=family.organization_id, session_id=family.id,
                           token_hash=hash_token(plain), created_at=now, expires_at=expires)
        session.add(row)
        session.flush()
        return plain, row

    def _event(self, session: Session, event: str, client: Client, family: UserSession,
               details: dict[str, Any] | None = None) -> None:
        user_uuid = session.execute(select(User.uuid).where(User.id == family.user_id)).scalar_one_or_none()
        self.events.add(session, event, client, organization_id=family.organization_id, user_id=family.user_id,
                        user_uuid=user_uuid, session_uuid=family.uuid, details=details)

    # -- checking access tokens ----------------------------------------------------------------

    def live(self, session_uuid: str) -> LiveSession | None:
        """The session if it may still be used (not revoked, not past its absolute limit)."""
        key = "session:" + session_uuid
        cached = self.cache.get(key)
        if cached == b"-":
            return None
        if cached is not None:
            info = LiveSession(**json.loads(cached))
        else:
            info = self._load_live(session_uuid)
            self.cache.set(key, b"-" if info is None else json.dumps(asdict(info)).encode(), _LIVE_CACHE_SECONDS)
        if info is None or info.expires_at <= self._clock():
            return None
        return info

    def _load_live(self, session_uuid: str) -> LiveSession | None:
        with self.db.read() as session:
            row = session.execute(
                select(UserSession, User, Organization)
                .join(User, User.id == UserSession.user_id)
                .join(Organization, Organization.id == UserSession.organization_id)
                .where(UserSession.uuid == session_uuid)
            ).first()
        if row is None:
            return None
        s, user, org = row
        if s.revoked_at is not None or org.status != "active":
            return None
        return LiveSession(s.id, s.uuid, org.id, org.uuid, user.id, user.uuid, user.role, user.is_platform_admin,
                           s.expires_at)

    def forget(self, *session_uuids: str) -> None:
        for uuid in session_uuids:
            self.cache.delete("session:" + uuid)

    # -- listing and ending ----------------------------------------------------------------------

    def list(self, who: Principal) -> list[dict[str, Any]]:
        user_id = _require_user(who)
        with self.db.read() as session:
            rows = repo.active_for_user(session, who.organization_id, user_id, self._clock())
        return [session_json(r, current=r.id == who.session_id) for r in rows]

    def revoke(self, who: Principal, session_uuid: str) -> None:
        """End one of the caller's own sessions; anyone else's is "not found"."""
        user_id = _require_user(who)
        now = self._clock()
        with self.db.write() as session:
            row = repo.get(session, who.organization_id, session_uuid)
            found = row is not None and row.user_id == user_id and row.revoked_at is None
            if found:
                repo.revoke(session, who.organization_id, [row.id], now, "revoked")
                self.audit.add(session, who, actions.SESSION_REVOKED, target_type="session", target_id=row.uuid)
                self._event(session, ev.SESSION_REVOKED, Client(who.client_ip, who.user_agent), row,
                            {"reason": "revoked", "by": who.session_uuid or who.method})
        if not found:
            raise self.events.not_found(who, "session", session_uuid, "session not found")
        self.forget(session_uuid)

    def logout(self, who: Principal) -> None:
        if who.session_id is None:
            raise BadRequestError("this request was not made with a session's access token; nothing to log out")
        now = self._clock()
        with self.db.write() as session:
            repo.revoke(session, who.organization_id, [who.session_id], now, "logout")
            self.audit.add(session, who, actions.LOGOUT, target_type="session", target_id=who.session_uuid)
            self._ended_by(session, who, [who.session_uuid], "logout")
        self.forget(who.session_uuid)

    def logout_all(self, who: Principal) -> int:
        """End every session of the calling user, this one included; returns how many ended."""
        user_id = _require_user(who)
        now = self._clock()
        with self.db.write() as session:
            rows = repo.open_for_user(session, who.organization_id, user_id)
            repo.revoke(session, who.organization_id, [r.id for r in rows], now, "logout_all")
            self.audit.add(session, who, actions.SESSIONS_REVOKED, target_type="user", target_id=who.user_uuid,
                           details={"count": len(rows)})
            self._ended_by(session, who, [r.uuid for r in rows], "logout_all")
            if rows and self.notifications is not None:
                self.notifications.sessions_revoked(user_id, "logout_all", count=len(rows), session=session,
                                                    key=f"logout-all:{who.session_uuid or who.token_uuid}:{now}")
        self.forget(*(r.uuid for r in rows))
        return len(rows)

    def _ended_by(self, session: Session, who: Principal, session_uuids: list[str], reason: str) -> None:
        for uuid in session_uuids:
            self.events.add(session, ev.SESSION_REVOKED, Client(who.client_ip, who.user_agent),
                            organization_id=who.organization_id, user_id=who.user_id, user_uuid=who.user_uuid,
                            session_uuid=uuid, details={"reason": reason})


def _require_user(who: Principal) -> int:
    if who.user_id is None:
        raise ForbiddenError("sessions belong to users, and this API token belongs to no user")
    return who.user_id


def session_json(row: UserSession, *, current: bool) -> dict[str, Any]:
    return {"id": row.uuid, "device": row.device_label, "userAgent": row.user_agent, "ip": row.last_ip,
            "createdIp": row.created_ip, "createdAt": row.created_at, "lastSeenAt": row.last_seen_at,
            "expiresAt": row.expires_at, "current": current}
