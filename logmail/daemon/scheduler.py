"""Scheduled jobs: APScheduler runs them; a lease in SQL makes sure only one daemon does.

A job says only what it does (``run``). The runner owns the rest: it takes the job's lease before
each run (so of several daemons exactly one runs it, and if that daemon dies its lease expires and
another takes over at the next tick), renews it while the job reports progress, and after a
successful run keeps it until the job's next interval is nearly due, so that N daemons with the
scheduler role run a job once per interval, not N times. A failed run releases the lease at once
so that any daemon may try again at its next tick. Failures are logged with the job's name and
never stop the schedule.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from logmail.store import leases
from logmail.store.database import Database

log = logging.getLogger("logmail.scheduler")

# After a successful run the lease is kept for this share of the interval: long enough that other
# daemons' ticks (which APScheduler jitters) find it taken, short enough to free the next run.
HOLD_FRACTION = 0.9


def _now_ms() -> int:
    return int(time.time() * 1000)


class ScheduledJob:
    name: str = ""
    interval: float = 60.0
    lease_seconds: float = 120.0

    def run(self, keep_alive: Callable[[], bool]) -> None:
        """Do the work; call ``keep_alive()`` between steps and stop when it returns False."""
        raise NotImplementedError


class JobRunner:
    def __init__(self, db: Database, *, owner: str | None = None, clock: Callable[[], int] = _now_ms) -> None:
        self.db = db
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.jobs: list[ScheduledJob] = []
        self._scheduler: BackgroundScheduler | None = None

    def add(self, job: ScheduledJob) -> None:
        self.jobs.append(job)

    def run_once(self, job: ScheduledJob) -> bool:
        """Run ``job`` if this daemon can take its lease; returns whether it ran."""
        lease = f"job:{job.name}"
        ttl = int(job.lease_seconds * 1000)
        if not leases.acquire(self.db, lease, self.owner, ttl, self.clock()):
            log.debug("%s: another daemon holds the lease", job.name)
            return False

        def keep_alive() -> bool:
            return leases.acquire(self.db, lease, self.owner, ttl, self.clock())

        started = self.clock()
        ok = False
        try:
            job.run(keep_alive)
            ok = True
        except Exception:
            log.exception("%s failed; it runs again at its next interval", job.name)
        finally:
            self._after_run(job, lease, started, ok)
        log.debug("%s ran in %d ms", job.name, self.clock() - started)
        return True

    def _after_run(self, job: ScheduledJob, lease: str, started: int, ok: bool) -> None:
        hold_until = started + int(job.interval * 1000 * HOLD_FRACTION)
        now = self.clock()
        try:
            if ok and hold_until > now:
                leases.acquire(self.db, lease, self.owner, hold_until - now, now)
            else:
                leases.release(self.db, lease, self.owner)
        except Exception:  # it expires on its own
            log.warning("%s: could not update its lease", job.name)

    def start(self) -> None:
        self._scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1},
                                              timezone="UTC")
        for job in self.jobs:
            self._scheduler.add_job(self._safe_run, "interval", seconds=job.interval, args=(job,), id=job.name,
                                    name=job.name, jitter=min(5, job.interval / 10))
        self._scheduler.start()
        log.info("scheduler started: %s", ", ".join(f"{j.name} every {j.interval:g} s" for j in self.jobs) or "no jobs")

    def _safe_run(self, job: ScheduledJob) -> None:
        try:
            self.run_once(job)
        except Exception as exc:  # e.g. the database is down while taking the lease
            log.warning("%s could not start: %s", job.name, exc)

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
