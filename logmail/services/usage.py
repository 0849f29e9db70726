"""Usage against limits: ``GET /usage``, API-call counting and the per-organisation API limits.

Mail received and storage are counted by the ingest and delete paths in the same transaction as
the mail itself (:mod:`logmail.store.usage`). API calls are counted in memory per process and added
to the month's row every few seconds (and when the process stops), so a request never waits for a
counter write; a crash loses at most those seconds of API-call counts, never mail counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from logmail.errors import ForbiddenError, NotFoundError, RateLimitedError
from logmail.services.policy import PolicyService
from logmail.services.principal import METHOD_TOKEN, Principal
from logmail.services.tiers import TierService
from logmail.store import addresses as address_repo
from logmail.store import usage as repo
from logmail.store.cache import Cache
from logmail.store.database import Database
from logmail.store.models import Organization

log = logging.getLogger("logmail.usage")

WARNING_THRESHOLDS = (80, 90, 100)


class UsageService:
    def __init__(self, db: Database, cache: Cache, tiers: TierService, policy: PolicyService, *, platform: bool,
                 clock: Callable[[], int]) -> None:
        self.db = db
        self.cache = cache
        self.tiers = tiers
        self.policy = policy
        self.platform = platform
        self._clock = clock
        self._lock = threading.Lock()
        # Held while counts move from memory to SQL, so a report never sees them in neither place.
        self._flushing = threading.Lock()
        self._api_calls: dict[int, int] = {}

    # -- API requests --------------------------------------------------------------------------

    def api_request(self, who: Principal) -> None:
        """Count one API request; in platform mode enforce the tier's ``api`` flag and per-minute limit."""
        with self._lock:
            self._api_calls[who.organization_id] = self._api_calls.get(who.organization_id, 0) + 1
        if not self.platform:
            return
        tier = self.policy.organization_tier(who.organization_id)
        if tier is None:
            return
        if who.method == METHOD_TOKEN and not tier.has("api"):
            raise ForbiddenError(f"the {tier.display_name} tier does not include API access with tokens; "
                                 "sign in, or move to a tier with the api feature")
        limit = tier.api_requests_per_minute
        if limit:
            result = self.cache.hit(f"rate:api:{who.organization_id}", limit, 60.0)
            if not result.allowed:
                raise RateLimitedError(f"your organisation's tier allows {limit} API requests a minute; "
                                       "retry later", retry_after=result.retry_after)

    def flush(self) -> None:
        """Add the API calls counted since the last flush to this month's rows."""
        with self._flushing:
            with self._lock:
                counts, self._api_calls = self._api_calls, {}
            if not counts:
                return
            try:
                with self.db.write_connection() as conn:
                    # An organisation deleted meanwhile (platform admins) has nowhere to count them.
                    known = set(conn.execute(select(Organization.id).where(Organization.id.in_(list(counts))))
                                .scalars())
                    repo.record_api_calls(conn, {org: n for org, n in counts.items() if org in known}, self._clock())
            except Exception as exc:  # keep them for the next flush rather than lose them
                log.warning("could not record API usage (%s); will retry", exc)
                with self._lock:
                    for org, n in counts.items():
                        self._api_calls[org] = self._api_calls.get(org, 0) + n

    # -- the report ----------------------------------------------------------------------------

    def report(self, who: Principal, organization_uuid: str | None = None) -> dict[str, Any]:
        """Usage of the caller's organisation (a platform admin may name another) against its limits."""
        now = self._clock()
        period = repo.period_of(now)
        with self._flushing, self.db.read() as session:
            if organization_uuid is not None and not who.is_platform_admin:
                raise ForbiddenError("only platform admins may see another organisation's usage")
            if organization_uuid is not None:
                org = session.execute(select(Organization).where(Organization.uuid == organization_uuid)
                                      ).scalar_one_or_none()
                if org is None:
                    raise NotFoundError("organisation not found")
            else:
                org = session.execute(select(Organization).where(Organization.id == who.organization_id)).scalar_one()
            month = repo.month(session.connection(), org.id, period)
            addresses = address_repo.count(session, org.id)
            with self._lock:
                pending_calls = self._api_calls.get(org.id, 0)
        tier = self.tiers.get(org.tier)
        used = {
            "emailsReceived": month.emails_received if month else 0,
            "storageBytes": org.storage_bytes,
            "apiCalls": (month.api_calls if month else 0) + pending_calls,
            "addresses": addresses,
            "messages": org.message_count,
        }
        limits = {"emailsReceived": tier.emails_per_month, "storageBytes": tier.storage_bytes,
                  "addresses": tier.max_addresses}
        percent = {key: _percent(used[key], limit) for key, limit in limits.items()}
        warnings = []
        for key, value in percent.items():
            reached = [t for t in WARNING_THRESHOLDS if value is not None and value >= t]
            if reached:
                warnings.append({"metric": key, "threshold": reached[-1], "percent": value})
        return {
            "organizationId": org.uuid,
            "organizationStatus": org.status,
            "period": period,
            "periodStart": repo.month_start_ms(period),
            "tier": tier.to_json(),
            "usage": used,
            "percent": percent,
            "warnings": warnings,
        }


def _percent(value: int, limit: int | None) -> float | None:
    if limit is None:
        return None
    if limit == 0:
        return 100.0
    return round(100.0 * value / limit, 1)
