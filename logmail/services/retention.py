"""Retention: deleting mail older than the policy allows, and not one message more."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from logmail.services.tiers import TierService
from logmail.store import messages as repo
from logmail.store.content import ContentStore
from logmail.store.database import Database
from logmail.store.models import Organization

log = logging.getLogger("logmail.retention")


DAY_MS = 86_400_000


class RetentionService:
    def __init__(self, db: Database, content: ContentStore, tiers: TierService | None = None) -> None:
        self.db = db
        self.content = content
        self.tiers = tiers

    def cutoffs(self, now_ms: int, max_age_days: int = 0) -> dict[int, int]:
        """Each organisation's cutoff (epoch ms): the shorter of its tier's ``retentionDays`` and the
        installation's ``retention.max_age_days``; organisations with neither are not listed."""
        with self.db.read() as session:
            organizations = session.execute(select(Organization.id, Organization.tier)).all()
        out = {}
        for org, tier_name in organizations:
            limits = [d for d in (max_age_days if max_age_days > 0 else None,
                                  self.tiers.get(tier_name).retention_days if self.tiers else None)
                      if d is not None]
            if limits:
                out[org] = max(0, now_ms - min(limits) * DAY_MS)
        return out

    def apply_policy(self, now_ms: int, max_age_days: int = 0, *, batch_size: int = 500,
                     keep_alive: Callable[[], bool] | None = None) -> int:
        """Delete what each organisation's retention allows, and not one message more."""
        return self._purge(self.cutoffs(now_ms, max_age_days), batch_size=batch_size, keep_alive=keep_alive)

    def purge(self, cutoff_ms: int, *, batch_size: int = 500, keep_alive: Callable[[], bool] | None = None) -> int:
        """Delete every message received before ``cutoff_ms``, whatever its organisation."""
        with self.db.read() as session:
            organizations = session.execute(select(Organization.id)).scalars().all()
        return self._purge({org: cutoff_ms for org in organizations}, batch_size=batch_size, keep_alive=keep_alive)

    def _purge(self, cutoffs: dict[int, int], *, batch_size: int, keep_alive: Callable[[], bool] | None) -> int:
        """Delete each organisation's messages received before its cutoff, in batches. ``keep_alive``
        is called between batches; when it returns False (the caller lost its lease) the purge stops
        where it is. Returns how many messages were deleted."""
        deleted = 0
        for org, cutoff_ms in cutoffs.items():
            while True:
                if keep_alive is not None and not keep_alive():
                    log.warning("retention stopped after %d message(s): the lease was lost", deleted)
                    return deleted
                with self.db.write() as session:
                    ids = repo.received_before(session, org, cutoff_ms, batch_size)
                    keys = repo.delete_messages(session, org, ids)
                if not ids:
                    break
                self._delete_content(keys)
                deleted += len(ids)
        if deleted:
            log.info("retention deleted %d message(s) in %d organisation(s)", deleted, len(cutoffs))
        return deleted

    def _delete_content(self, keys: list[str]) -> None:
        try:
            self.content.delete_many(keys)
        except Exception:  # the rows are gone; unreachable blobs are a space leak, not a fault
            log.warning("retention could not remove %d content blob(s)", len(keys))
