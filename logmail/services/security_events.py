"""The security-event trail: every authentication decision and every cross-tenant probe.

Events are written in the transaction of the decision they record when there is one (a refresh that
revokes a family records the reuse in the same commit), and in their own transaction otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from logmail.errors import NotFoundError
from logmail.services.devices import Client
from logmail.services.principal import Principal
from logmail.store import audit as repo
from logmail.store import probes
from logmail.store.database import Database
from logmail.store.models import SecurityEvent

log = logging.getLogger("logmail.security")

# The names of events, in one place, so the trail can be filtered by them.
LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
REFRESHED = "session_refreshed"
REFRESH_RACE_ACCEPTED = "refresh_race_accepted"
REFRESH_TOKEN_REUSED = "refresh_token_reused"
NETWORK_CHANGED = "session_network_changed"
DEVICE_CHANGED = "session_device_changed"
SESSION_EXPIRED = "session_expired"
SESSION_REVOKED = "session_revoked"
CROSS_TENANT_ACCESS = "cross_tenant_access"
CROSS_USER_ACCESS = "cross_user_access"  # another user's object in the same organisation (mailbox accounts)
TRUSTED_HEADERS_REFUSED = "trusted_headers_refused"
ADMIN_ACCESS_DENIED = "admin_access_denied"  # a caller without the platform-admin flag tried /admin/*


class SecurityEvents:
    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self.db = db
        self._clock = clock

    def add(self, session: Session, event: str, client: Client | None = None, *, organization_id: int | None = None,
            user_id: int | None = None, user_uuid: str | None = None, session_uuid: str | None = None,
            details: dict[str, Any] | None = None) -> None:
        """Record an event inside the caller's transaction."""
        client = client or Client()
        repo.add_event(session, event=event, created_at=self._clock(), organization_id=organization_id,
                       user_id=user_id, user_uuid=user_uuid, session_uuid=session_uuid, ip=client.ip,
                       user_agent=client.user_agent, details=details)
        # Ids and names only: never a token, a password or an email in the log.
        log.info("security event %s org=%s user=%s session=%s ip=%s", event, organization_id, user_uuid,
                 session_uuid, client.ip)

    def record(self, event: str, client: Client | None = None, **fields: Any) -> None:
        """Record an event in a transaction of its own."""
        with self.db.write() as session:
            self.add(session, event, client, **fields)

    def record_for(self, who: Principal, event: str, details: dict[str, Any] | None = None) -> None:
        self.record(event, Client(who.client_ip, who.user_agent), organization_id=who.organization_id,
                    user_id=who.user_id, user_uuid=who.user_uuid, session_uuid=who.session_uuid,
                    details={**_credential(who), **(details or {})})

    def not_found(self, who: Principal, kind: str, public_id: str, message: str) -> NotFoundError:
        """The 404 for an object the caller's organisation does not have; a probe of another
        tenant's object is recorded as ``cross_tenant_access`` first. The caller cannot tell the two apart."""
        with self.db.read() as session:
            owner = probes.owner_of(session, kind, public_id)
        if owner is not None and owner != who.organization_id:
            self.record_for(who, CROSS_TENANT_ACCESS, {"kind": kind, "id": public_id})
        return NotFoundError(message)

    def list(self, who: Principal, *, user_id: int | None, event: str | None, since: int | None,
             until: int | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as session:
            rows, total = repo.list_events(session, who.organization_id, user_id=user_id, event=event, since=since,
                                           until=until, limit=limit, offset=offset)
        return [event_json(r) for r in rows], total


def _credential(who: Principal) -> dict[str, Any]:
    return {"method": who.method, **({"tokenId": who.token_uuid} if who.token_uuid else {})}


def event_json(row: SecurityEvent) -> dict[str, Any]:
    return {"id": row.uuid, "event": row.event, "userId": row.user_uuid, "sessionId": row.session_uuid,
            "ip": row.ip, "userAgent": row.user_agent, "details": row.details, "createdAt": row.created_at}
