"""Managing API tokens: create (the value is shown once), list, revoke.

Who may do what:

* users (logged in, or named by trusted headers) manage their own tokens, whatever their role;
* callers with the ``admin`` scope (admins, owners, and tokens carrying ``admin``) manage every
  token of the organisation, the owner token included;
* a token never gets more power than its creator: each scope asked for must be one the creator
  holds now, and a user's token stays bounded by the user's role when it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logmail.errors import BadRequestError, ForbiddenError
from logmail.services import audit as actions
from logmail.services.audit import AuditLog
from logmail.services.principal import ALL_SCOPES, METHOD_TOKEN, Principal
from logmail.services.security_events import SecurityEvents
from logmail.services.tokens import TokenAuthenticator, new_token
from logmail.store import api_tokens as repo
from logmail.store.database import Database
from logmail.store.models import ApiToken


class ApiTokenService:
    def __init__(self, db: Database, authenticator: TokenAuthenticator, audit: AuditLog, events: SecurityEvents,
                 clock: Callable[[], int]) -> None:
        self.db = db
        self.authenticator = authenticator
        self.audit = audit
        self.events = events
        self._clock = clock

    def create(self, who: Principal, name: str, scopes: list[str], expires_at: int | None) -> dict[str, Any]:
        _require_manager(who)
        name = name.strip()
        if not name:
            raise BadRequestError("name must not be empty")
        unknown = sorted(set(scopes) - set(ALL_SCOPES))
        if unknown or not scopes:
            raise BadRequestError(f"scopes must be a non-empty list of {', '.join(ALL_SCOPES)}")
        beyond = [s for s in ALL_SCOPES if s in scopes and not who.can(s)]
        if beyond:
            raise ForbiddenError(f"a token cannot have more power than its creator, who lacks {', '.join(beyond)}")
        if expires_at is not None and expires_at <= self._clock():
            raise BadRequestError("expiresAt must be in the future (epoch milliseconds)")
        ordered = [s for s in ALL_SCOPES if s in scopes]
        plain, row = new_token(who.organization_id, name, scopes=ordered, user_id=who.user_id, expires_at=expires_at)
        row.created_at = self._clock()
        with self.db.write() as session:
            session.add(row)
            session.flush()
            self.audit.add(session, who, actions.TOKEN_CREATED, target_type="token", target_id=row.uuid,
                           details={"name": name, "scopes": ordered})
        return {**token_json(row, who.user_uuid), "token": plain}

    def list(self, who: Principal, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        _require_manager(who)
        only_user = None if who.can("admin") else who.user_id
        with self.db.read() as session:
            rows, total = repo.list_tokens(session, who.organization_id, user_id=only_user, limit=limit,
                                           offset=offset)
        return [token_json(t, creator) for t, creator in rows], total

    def revoke(self, who: Principal, token_uuid: str) -> None:
        _require_manager(who)
        now = self._clock()
        with self.db.write() as session:
            row = repo.get(session, who.organization_id, token_uuid)
            # A revoked token is listed nowhere, so for the API it no longer exists.
            mine = (row is not None and row.revoked_at is None
                    and (who.can("admin") or (row.user_id is not None and row.user_id == who.user_id)))
            if mine:
                row.revoked_at = now
                self.audit.add(session, who, actions.TOKEN_REVOKED, target_type="token", target_id=row.uuid,
                               details={"name": row.name})
            digest = row.token_hash if mine else None
        if not mine:
            raise self.events.not_found(who, "token", token_uuid, "token not found")
        self.authenticator.forget_hash(digest)  # at once, not when the cached decision runs out


def _require_manager(who: Principal) -> None:
    if who.method == METHOD_TOKEN and not who.can("admin"):
        raise ForbiddenError("managing API tokens with an API token needs the 'admin' scope")
    if who.user_id is None and not who.can("admin"):
        raise ForbiddenError("managing API tokens needs a user or the 'admin' scope")


def token_json(row: ApiToken, creator_uuid: str | None) -> dict[str, Any]:
    return {"id": row.uuid, "name": row.name, "prefix": row.prefix, "scopes": [s for s in row.scopes.split(",") if s],
            "createdAt": row.created_at, "expiresAt": row.expires_at, "lastUsedAt": row.last_used_at,
            "createdBy": creator_uuid}
