"""Quota warnings at 80, 90 and 100 % of a tier's limits, noticed as mail is stored.

The ingest path calls :meth:`QuotaWatcher.observe` after each committed batch, so the check must
cost next to nothing. After reading an organisation's usage once, the watcher knows how much more
mail (and how many more bytes) it takes to reach the next threshold, and counts the batches this
process stores against that headroom; only when it is used up, the month changes, or
``recheck_seconds`` have passed (other processes store mail too, and tiers change) does it read the
database again. A threshold reached is one notification per organisation admin and month, whatever
the number of processes that notice it (the notification's dedupe key sees to that).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from logmail.services.notifications import NotificationService
from logmail.services.tiers import TierService
from logmail.services.usage import WARNING_THRESHOLDS
from logmail.store import usage as usage_repo
from logmail.store.database import Database
from logmail.store.models import Organization

log = logging.getLogger("logmail.usage")

METRICS = ("emailsReceived", "storageBytes")


@dataclass(slots=True)
class _Headroom:
    period: str
    checked_at: float                  # time.monotonic()
    left: dict[str, int | None]        # per metric: to the next threshold (None: no limit, or past 100 %)


class QuotaWatcher:
    def __init__(self, db: Database, tiers: TierService, notifications: NotificationService,
                 clock: Callable[[], int], *, recheck_seconds: float = 10.0) -> None:
        self.db = db
        self.tiers = tiers
        self.notifications = notifications
        self._clock = clock
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._headroom: dict[int, _Headroom] = {}
        self._warned: set[tuple[int, str, str, int]] = set()
        self.webhooks = None  # WebhookService: quota.warning events, set by the container

    def observe(self, per_org: dict[int, tuple[int, int]]) -> None:
        """After a batch committed: ``per_org`` maps organisation → (messages, bytes) it added. Never raises."""
        try:
            period = usage_repo.period_of(self._clock())
            for organization_id, (count, size) in per_org.items():
                if self._used_up(organization_id, period, {"emailsReceived": count, "storageBytes": size}):
                    self.check(organization_id)
        except Exception:
            log.warning("could not check the quota warnings", exc_info=True)

    def _used_up(self, organization_id: int, period: str, added: dict[str, int]) -> bool:
        with self._lock:
            room = self._headroom.get(organization_id)
            if room is None or room.period != period or time.monotonic() - room.checked_at >= self.recheck_seconds:
                return True
            due = False
            for metric, amount in added.items():
                left = room.left.get(metric)
                if left is not None:
                    room.left[metric] = left - amount
                    due = due or room.left[metric] <= 0
            return due

    def check(self, organization_id: int) -> None:
        """Read the organisation's usage now and warn about every threshold newly reached."""
        now = self._clock()
        period = usage_repo.period_of(now)
        with self.db.read() as session:
            org = session.execute(select(Organization.tier, Organization.storage_bytes)
                                  .where(Organization.id == organization_id)).first()
            month = usage_repo.month(session.connection(), organization_id, period) if org else None
        if org is None:
            return
        tier = self.tiers.get(org.tier)
        used = {"emailsReceived": month.emails_received if month else 0, "storageBytes": org.storage_bytes}
        limits = {"emailsReceived": tier.emails_per_month, "storageBytes": tier.storage_bytes}
        left: dict[str, int | None] = {}
        for metric in METRICS:
            limit = limits[metric]
            if limit is None:
                left[metric] = None
                continue
            reached = [t for t in WARNING_THRESHOLDS if used[metric] * 100 >= t * limit]
            if reached:
                self._warn(organization_id, metric, reached[-1], period, used[metric], limit)
            ahead = [t for t in WARNING_THRESHOLDS if used[metric] * 100 < t * limit]
            left[metric] = math.ceil(ahead[0] * limit / 100) - used[metric] if ahead else None
        with self._lock:
            self._headroom[organization_id] = _Headroom(period, time.monotonic(), left)

    def _warn(self, organization_id: int, metric: str, threshold: int, period: str, used: int, limit: int) -> None:
        # Only the highest threshold reached: 80 % is no news once 90 % has been said.
        key = (organization_id, period, metric, threshold)
        if key in self._warned:
            return
        told = self.notifications.quota_warning(organization_id, metric, threshold, period=period, used=used,
                                                limit=limit)
        if told:  # nobody told (no admins yet, or the database failed): look again at the next check
            self._warned.add(key)
            if self.webhooks is not None:  # once per threshold and month, like the notification
                quota = {"emailsReceived": "emailsPerMonth", "storageBytes": "storageBytes"}[metric]
                try:
                    self.webhooks.emit(organization_id, "quota.warning", {
                        "quota": quota, "used": used, "limit": limit, "percent": threshold, "period": period})
                except Exception:
                    log.warning("could not queue the quota.warning webhook", exc_info=True)
        log.info("organisation %s: %s at %d %% of its tier's limit", organization_id, metric, threshold)
