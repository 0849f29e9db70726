"""API tokens: shown once, stored as a SHA-256 hash, checked on every request.

Tokens are 256 random bits, so a fast hash is the right one: there is nothing to brute-force, and
the lookup by hash is a single indexed query.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update

from logmail.store.cache import Cache, MemoryCache
from logmail.store.database import Database
from logmail.store.models import ApiToken, Organization, now_ms

TOKEN_PREFIX = "lm_"
ALL_SCOPES = ("read", "write", "ingest", "admin")
_CACHE_SECONDS = 10.0
_NEGATIVE_CACHE_SECONDS = 2.0
_LAST_USED_GRANULARITY_MS = 60_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always inside exactly one organisation."""

    organization_id: int
    organization_uuid: str
    user_id: int | None
    token_id: int | None
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(db: Database, organization_id: int, name: str, *, scopes=ALL_SCOPES, user_id: int | None = None,
                 expires_at: int | None = None) -> tuple[str, ApiToken]:
    """Create a token; the plain value is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(organization_id=organization_id, user_id=user_id, name=name, token_hash=hash_token(token),
                   prefix=token[:10], scopes=",".join(scopes), expires_at=expires_at)
    with db.write() as session:
        session.add(row)
    return token, row


class TokenAuthenticator:
    """Resolves bearer tokens. Decisions are cached for a few seconds in the shared cache (Redis
    when configured, so every daemon benefits), so busy clients cost one lookup per few seconds."""

    def __init__(self, db: Database, cache: Cache | None = None) -> None:
        self.db = db
        self.cache = cache if cache is not None else MemoryCache()

    def authenticate(self, token: str) -> Principal | None:
        key = "auth:" + hash_token(token)
        cached = self.cache.get(key)
        if cached is not None:
            return _decode(cached)
        principal = self._lookup(key[5:])
        self.cache.set(key, _encode(principal), _CACHE_SECONDS if principal else _NEGATIVE_CACHE_SECONDS)
        return principal

    def forget(self, token: str | None = None) -> None:
        """Drop cached decisions: one token's, or (in memory) all of them."""
        if token is not None:
            self.cache.delete("auth:" + hash_token(token))
        elif isinstance(self.cache, MemoryCache):
            self.cache = MemoryCache()

    def _lookup(self, digest: str) -> Principal | None:
        now = now_ms()
        with self.db.read() as session:
            row = session.execute(
                select(ApiToken, Organization.uuid)
                .join(Organization, Organization.id == ApiToken.organization_id)
                .where(ApiToken.token_hash == digest)
            ).first()
        if row is None:
            return None
        token, org_uuid = row
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            return None
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY_MS:
            with self.db.write() as session:
                session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        return Principal(organization_id=token.organization_id, organization_uuid=org_uuid, user_id=token.user_id,
                         token_id=token.id, scopes=frozenset(s for s in token.scopes.split(",") if s))


def _encode(principal: Principal | None) -> bytes:
    if principal is None:
        return b"-"
    return json.dumps([principal.organization_id, principal.organization_uuid, principal.user_id,
                       principal.token_id, sorted(principal.scopes)]).encode()


def _decode(data: bytes) -> Principal | None:
    if data == b"-":
        return None
    org, org_uuid, user, token_id, scopes = json.loads(data)
    return Principal(organization_id=org, organization_uuid=org_uuid, user_id=user, token_id=token_id,
                     scopes=frozenset(scopes))
