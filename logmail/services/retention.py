"""Retention: deleting mail older than the policy allows, and not one message more."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from logmail.store import messages as repo
from logmail.store.content import ContentStore
from logmail.store.database import Database
from logmail.store.models import Organization

log = logging.getLogger("logmail.retention")


class RetentionService:
    def __init__(self, db: Database, content: ContentStore) -> None:
        self.db = db
        self.content = content

    def purge(self, cutoff_ms: int, *, batch_size: int = 500, keep_alive: Callable[[], bool] | None = None) -> int:
        """Delete every message received before ``cutoff_ms``, organisation by organisation, in
        batches. ``keep_alive`` is called between batches; when it returns False (the caller lost
        its lease) the purge stops where it is. Returns how many messages were deleted."""
        with self.db.read() as session:
            organizations = session.execute(select(Organization.id)).scalars().all()
        deleted = 0
        for org in organizations:
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
            log.info("retention deleted %d message(s) received before %d", deleted, cutoff_ms)
        return deleted

    def _delete_content(self, keys: list[str]) -> None:
        try:
            self.content.delete_many(keys)
        except Exception:  # the rows are gone; unreachable blobs are a space leak, not a fault
            log.warning("retention could not remove %d content blob(s)", len(keys))
