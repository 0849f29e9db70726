"""The platform in numbers, for platform administrators (``GET /admin/stats``, ``logmail admin stats``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logmail.errors import LogmailError
from logmail.queue.base import WorkQueue
from logmail.services.accept import INGEST_QUEUE
from logmail.services.admin_sessions import require_platform_admin
from logmail.services.principal import Principal
from logmail.store import admin as repo
from logmail.store.database import Database

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class PlatformStats:
    def __init__(self, db: Database, queue: WorkQueue, clock: Callable[[], int], *, idle_limit_days: int) -> None:
        self.db = db
        self.queue = queue
        self._clock = clock
        self.idle_limit_days = idle_limit_days

    def __call__(self, who: Principal) -> dict[str, Any]:
        """Users, organisations, kept messages and bytes, mail stored in the last minute and hour,
        the ingest queue's depth (null when the queue cannot be reached) and live sessions (neither
        revoked nor past their absolute or idle limit)."""
        require_platform_admin(who)
        now = self._clock()
        with self.db.read() as session:
            t = repo.totals(session, now=now, idle_since=now - self.idle_limit_days * DAY_MS)
            last_minute = repo.received_since(session, now - MINUTE_MS)
            last_hour = repo.received_since(session, now - HOUR_MS)
        try:
            depth: int | None = self.queue.depth(INGEST_QUEUE)
        except LogmailError:
            depth = None
        return {
            "users": {"total": t["users"], "platformAdmins": t["platformAdmins"]},
            "organizations": {"total": t["organizations"], "active": t["active"], "suspended": t["suspended"]},
            "messages": t["messages"],
            "storageBytes": t["storageBytes"],
            "ingestRate": {"lastMinute": last_minute, "lastHour": last_hour,
                           "perMinuteLastHour": round(last_hour / 60, 2)},
            "queueDepth": depth,
            "activeSessions": t["activeSessions"],
            "generatedAt": now,
        }
