"""Authentication: logins, access tokens, trusted gateway headers, and the clock they all share.

:class:`AuthService` owns the one clock (a callable returning epoch milliseconds) that every
session, token and trail reads, so a test can move time for all of them by swapping
``services.auth.clock``. It composes the smaller services (passwords, access tokens, sessions,
security events, audit) and turns each way of authenticating into the one :class:`Principal`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logmail.config import Settings
from logmail.errors import ConfigError, ForbiddenError, TooManyAttemptsError, UnauthorisedError
from logmail.services import audit as actions
from logmail.services import security_events as ev
from logmail.services.audit import AuditLog
from logmail.services.devices import Client
from logmail.services.jwt_tokens import INVALID, AccessTokens, signing_key
from logmail.services.passwords import Passwords
from logmail.services.principal import METHOD_SESSION, METHOD_TRUSTED_HEADERS, Principal, scopes_for
from logmail.services.rate_limits import RateLimits
from logmail.services.security_events import SecurityEvents
from logmail.services.sessions import IssuedTokens, SessionService
from logmail.services.users import trusted_headers_key, user_json
from logmail.store import users as users_repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import now_ms

log = logging.getLogger("logmail.auth")

BAD_CREDENTIALS = "invalid email or password"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEADER_CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class LoginResult:
    tokens: IssuedTokens
    user: dict[str, Any]


def check_settings(settings: Settings) -> None:
    """Refuse settings that would be unsafe to serve (the daemon calls this before it listens)."""
    a = settings.auth
    if a.trust_headers and not a.behind_tls_proxy and not is_loopback(settings.api.host):
        raise ConfigError(f"auth.trust_headers lets any client choose who it is: it needs the API on loopback "
                          f"only (api.host is {settings.api.host!r}) or auth.behind_tls_proxy = true, declaring "
                          "that a gateway in front sets X-Tenant-ID and X-User-ID itself")
    for name in ("access_token_lifetime_minutes", "refresh_token_lifetime_days", "session_absolute_limit_days",
                 "session_idle_limit_days", "login_attempts_per_account", "login_attempts_per_address",
                 "login_attempt_window_minutes"):
        if getattr(a, name) < 1:
            raise ConfigError(f"auth.{name} must be at least 1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthService:
    def __init__(self, settings: Settings, db: Database, cache: Cache) -> None:
        check_settings(settings)
        self.clock: Callable[[], int] = now_ms
        self.settings = settings.auth
        self.db = db
        self.cache = cache
        self.passwords = Passwords(settings.auth.password_min_length)
        self.access = AccessTokens(signing_key(settings.auth.jwt_secret, settings.data_path),
                                   settings.auth.access_token_lifetime_minutes, self.now)
        self.events = SecurityEvents(db, self.now)
        self.audit = AuditLog(db, self.now)
        self.limits = RateLimits(cache, settings.auth)
        self.sessions = SessionService(db, cache, self.now, self.events, self.audit, self.access, settings.auth)

    def now(self) -> int:
        """Epoch milliseconds by the current clock (looked up on every call, so swapping it works)."""
        return self.clock()

    # -- logging in ------------------------------------------------------------------------------

    def login(self, email: str, password: str, client: Client) -> LoginResult:
        """A new session for valid credentials; the same error, in the same time, for any bad ones."""
        email = email.strip().lower()
        try:
            self.limits.login_attempt(email, client.ip)
        except TooManyAttemptsError as exc:
            self.events.record(ev.LOGIN_THROTTLED, client, details={"retryAfter": exc.retry_after})
            raise
        with self.db.read() as session:
            found = users_repo.by_email(session, email) if len(email) <= 320 else None
        if found is None:
            self.passwords.verify_nobody(password)
            self.events.record(ev.LOGIN_FAILED, client, details={"reason": "unknown_account"})
            raise UnauthorisedError(BAD_CREDENTIALS)
        user, org = found
        if not self.passwords.verify(user.password_hash, password):
            self.events.record(ev.LOGIN_FAILED, client, organization_id=org.id, user_id=user.id,
                               user_uuid=user.uuid, details={"reason": "wrong_password"})
            raise UnauthorisedError(BAD_CREDENTIALS)
        if org.status != "active":
            raise ForbiddenError("this organisation is suspended")
        rehash = self.passwords.hash(password) if self.passwords.needs_rehash(user.password_hash) else None
        with self.db.write() as session:
            user = session.merge(user)
            if rehash:
                user.password_hash = rehash
            tokens = self.sessions.start(session, user, org, client)
            who = Principal(org.id, org.uuid, user.id, None, frozenset(), method=METHOD_SESSION, user_uuid=user.uuid,
                            role=user.role, session_uuid=tokens.session_uuid, client_ip=client.ip,
                            user_agent=client.user_agent)
            self.audit.add(session, who, actions.LOGIN, target_type="session", target_id=tokens.session_uuid,
                           details={"device": client.device.label})
            self.events.add(session, ev.LOGIN_SUCCEEDED, client, organization_id=org.id, user_id=user.id,
                            user_uuid=user.uuid, session_uuid=tokens.session_uuid,
                            details={"device": client.device.label})
        return LoginResult(tokens, user_json(user, org))

    # -- authenticating requests -----------------------------------------------------------------

    def authenticate_access(self, token: str, client: Client) -> Principal:
        """The caller named by an access token whose session is still alive; UnauthorisedError otherwise."""
        claims = self.access.decode(token)
        live = self.sessions.live(claims.session_uuid)
        if live is None:
            raise UnauthorisedError("the session has ended; log in again")
        if live.user_uuid != claims.user_uuid or live.organization_uuid != claims.organization_uuid:
            raise UnauthorisedError(INVALID)
        return Principal(live.organization_id, live.organization_uuid, live.user_id, None, scopes_for(live.role),
                         method=METHOD_SESSION, user_uuid=live.user_uuid, role=live.role, session_id=live.session_id,
                         session_uuid=live.session_uuid, is_platform_admin=live.is_platform_admin,
                         client_ip=client.ip, user_agent=client.user_agent, expires_at=claims.expires_at)

    def authenticate_headers(self, tenant: str | None, user: str | None, client: Client) -> Principal:
        """The caller a trusted gateway named in X-Tenant-ID and X-User-ID (``auth.trust_headers``)."""
        tenant, user = (tenant or "").strip().lower(), (user or "").strip().lower()
        if not _UUID.match(tenant) or not _UUID.match(user):
            raise UnauthorisedError("X-Tenant-ID and X-User-ID must both be UUIDs")
        key = trusted_headers_key(tenant, user)
        cached = self.cache.get(key)
        if cached is None:
            with self.db.read() as session:
                found = users_repo.with_organization(session, tenant, user)
            if found is None or found[1].status != "active":
                value = b"-"
            else:
                u, o = found
                value = f"{o.id}|{u.id}|{u.role}|{int(u.is_platform_admin)}".encode()
            self.cache.set(key, value, _HEADER_CACHE_SECONDS)
            cached = value
        if cached == b"-":
            self.events.record(ev.TRUSTED_HEADERS_REFUSED, client, details={"tenant": tenant, "user": user})
            raise UnauthorisedError("X-User-ID does not name a user of the organisation X-Tenant-ID")
        org_id, user_id, role, platform = cached.decode().split("|")
        return Principal(int(org_id), tenant, int(user_id), None, scopes_for(role), method=METHOD_TRUSTED_HEADERS,
                         user_uuid=user, role=role, is_platform_admin=platform == "1", client_ip=client.ip,
                         user_agent=client.user_agent)

