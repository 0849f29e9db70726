"""The embedded work queue: an outbox table in the SQL database.

A claim moves a job's ``available_at`` into the future (its lease) and records the claimant; a
consumer that dies simply lets the lease run out and another claims the job again. On MySQL the
claim uses ``FOR UPDATE SKIP LOCKED`` so competing daemons never wait for each other's rows.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from logmail.queue.base import DeadLetter, Job
from logmail.store.database import Database
from logmail.store.models import Job as JobRow


def _now_ms() -> int:
    return int(time.time() * 1000)


class OutboxQueue:
    def __init__(self, db: Database, *, lease_seconds: int = 120, max_attempts: int = 5,
                 retry_base_delay: float = 2.0, clock=_now_ms) -> None:
        self.db = db
        self.lease_ms = int(lease_seconds * 1000)
        self.max_attempts = max_attempts
        self.retry_base_ms = int(retry_base_delay * 1000)
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]

    def publish_many(self, queue: str, payloads: list[dict[str, Any]]) -> None:
        if not payloads:
            return
        now = self.clock()
        rows = [{"queue": queue, "payload": p, "status": "ready", "attempts": 0, "available_at": now,
                 "created_at": now} for p in payloads]
        with self.db.write_connection() as conn:
            conn.execute(insert(JobRow), rows)

    def claim(self, queue: str, limit: int) -> list[Job]:
        now = self.clock()
        with self.db.write_connection() as conn:
            candidates = (
                select(JobRow.id, JobRow.payload, JobRow.attempts)
                .where(JobRow.queue == queue, JobRow.status == "ready", JobRow.available_at <= now)
                .order_by(JobRow.available_at, JobRow.id)
                .limit(limit)
            )
            if self.db.dialect != "sqlite":
                candidates = candidates.with_for_update(skip_locked=True)
            rows = conn.execute(candidates).all()
            if not rows:
                return []
            conn.execute(
                update(JobRow)
                .where(JobRow.id.in_([r.id for r in rows]))
                .values(available_at=now + self.lease_ms, lease_owner=self.owner)
            )
        return [Job(id=r.id, queue=queue, payload=r.payload, attempts=r.attempts) for r in rows]

    def ack(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        with self.db.write_connection() as conn:
            conn.execute(delete(JobRow).where(JobRow.id.in_([j.id for j in jobs])))

    def fail(self, job: Job, error: str) -> bool:
        attempts = job.attempts + 1
        dead = attempts >= self.max_attempts
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:10000], "lease_owner": None}
        if dead:
            values["status"] = "dead"
        else:
            values["available_at"] = self.clock() + self.retry_base_ms * (2 ** (attempts - 1))
        with self.db.write_connection() as conn:
            conn.execute(update(JobRow).where(JobRow.id == job.id).values(**values))
        return dead

    def release(self, jobs: list[Job], delay: float) -> None:
        if not jobs:
            return
        with self.db.write_connection() as conn:
            conn.execute(update(JobRow).where(JobRow.id.in_([j.id for j in jobs]))
                         .values(available_at=self.clock() + int(delay * 1000), lease_owner=None))

    def depth(self, queue: str) -> int:
        with self.db.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(JobRow).where(JobRow.queue == queue, JobRow.status == "ready")
            ).scalar_one()

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(JobRow).where(JobRow.queue == queue, JobRow.status == "dead").order_by(JobRow.id).limit(limit)
            ).all()
        return [DeadLetter(id=r.id, queue=r.queue, payload=r.payload, attempts=r.attempts,
                           error=r.last_error or "", created_at=r.created_at) for r in rows]

    def replay(self, queue: str, ids: list[int | str] | None = None) -> int:
        stmt = update(JobRow).where(JobRow.queue == queue, JobRow.status == "dead")
        if ids is not None:
            stmt = stmt.where(JobRow.id.in_([int(i) for i in ids]))
        with self.db.write_connection() as conn:
            result = conn.execute(stmt.values(status="ready", attempts=0, available_at=self.clock()))
        return result.rowcount

    def close(self) -> None:
        pass
