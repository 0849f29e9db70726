"""API tokens: shown once, stored as a SHA-256 hash, checked on every request.

Tokens are 256 random bits, so a fast hash is the right one: there is nothing to brute-force, and
the lookup by hash is a single indexed query.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable

from sqlalchemy import select, update

from logmail.services.principal import ALL_SCOPES, METHOD_TOKEN, Principal, scopes_for
from logmail.store.cache import Cache, MemoryCache
from logmail.store.database import Database
from logmail.store.models import ApiToken, Organization, User, now_ms

__all__ = ["ALL_SCOPES", "TOKEN_PREFIX", "Principal", "TokenAuthenticator", "create_token", "hash_token", "new_token"]

TOKEN_PREFIX = "lm_"
# A new name when the cached format changed, so daemons of two versions sharing a Redis never misread.
_CACHE_PREFIX = "apitoken:"
_CACHE_SECONDS = 10.0
_NEGATIVE_CACHE_SECONDS = 2.0
_LAST_USED_GRANULARITY_MS = 60_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(organization_id: int, name: str, *, scopes=ALL_SCOPES, user_id: int | None = None,
              expires_at: int | None = None) -> tuple[str, ApiToken]:
    """A token and its row, not yet added to any session; the plain value is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(organization_id=organization_id, user_id=user_id, name=name, token_hash=hash_token(token),
                   prefix=token[:10], scopes=",".join(scopes), expires_at=expires_at)
    return token, row


def create_token(db: Database, organization_id: int, name: str, *, scopes=ALL_SCOPES, user_id: int | None = None,
                 expires_at: int | None = None) -> tuple[str, ApiToken]:
    """Create a token; the plain value is returned once and never stored."""
    token, row = new_token(organization_id, name, scopes=scopes, user_id=user_id, expires_at=expires_at)
    with db.write() as session:
        session.add(row)
    return token, row


class TokenAuthenticator:
    """Resolves bearer tokens. Decisions are cached for a few seconds in the shared cache (Redis
    when configured, so every daemon benefits), so busy clients cost one lookup per few seconds.
    Revoking a token deletes its entry (:meth:`forget_hash`), so revocation takes effect at once; a
    cached decision also carries the token's expiry, checked against the clock on every use."""

    def __init__(self, db: Database, cache: Cache | None = None, clock: Callable[[], int] | None = None) -> None:
        self.db = db
        self.cache = cache if cache is not None else MemoryCache()
        self._clock = clock or now_ms

    def authenticate(self, token: str) -> Principal | None:
        key = _CACHE_PREFIX + hash_token(token)
        cached = self.cache.get(key)
        if cached is not None:
            principal = _decode(cached)
        else:
            principal = self._lookup(key[len(_CACHE_PREFIX):])
            self.cache.set(key, _encode(principal), _CACHE_SECONDS if principal else _NEGATIVE_CACHE_SECONDS)
        if principal is not None and principal.expires_at is not None and principal.expires_at <= self._clock():
            return None
        return principal

    def forget(self, token: str | None = None) -> None:
        """Drop cached decisions: one token's, or (in memory) all of them."""
        if token is not None:
            self.forget_hash(hash_token(token))
        elif isinstance(self.cache, MemoryCache):
            self.cache = MemoryCache()

    def forget_hash(self, token_hash: str) -> None:
        """Drop the cached decision about the token with this hash (revocation knows only the hash)."""
        self.cache.delete(_CACHE_PREFIX + token_hash)

    def _lookup(self, digest: str) -> Principal | None:
        now = self._clock()
        with self.db.read() as session:
            row = session.execute(
                select(ApiToken, Organization, User)
                .join(Organization, Organization.id == ApiToken.organization_id)
                .outerjoin(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == digest)
            ).first()
        if row is None:
            return None
        token, org, user = row
        if (token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now)
                or org.status != "active"):
            return None
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY_MS:
            with self.db.write() as session:
                session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        token_scopes = frozenset(s for s in token.scopes.split(",") if s)
        role = user.role if user is not None else None
        return Principal(organization_id=token.organization_id, organization_uuid=org.uuid, user_id=token.user_id,
                         token_id=token.id, scopes=scopes_for(role, token_scopes), method=METHOD_TOKEN,
                         user_uuid=user.uuid if user is not None else None, role=role, token_uuid=token.uuid,
                         is_platform_admin=bool(user is not None and user.is_platform_admin),
                         expires_at=token.expires_at)


_CACHED_FIELDS = ("organization_id", "organization_uuid", "user_id", "token_id", "user_uuid", "role", "token_uuid",
                  "is_platform_admin", "expires_at")


def _encode(principal: Principal | None) -> bytes:
    if principal is None:
        return b"-"
    data = {name: getattr(principal, name) for name in _CACHED_FIELDS}
    data["scopes"] = sorted(principal.scopes)
    return json.dumps(data).encode()


def _decode(data: bytes) -> Principal | None:
    if data == b"-":
        return None
    fields = json.loads(data)
    fields["scopes"] = frozenset(fields["scopes"])
    return Principal(method=METHOD_TOKEN, **fields)
