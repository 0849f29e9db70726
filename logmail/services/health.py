"""Health of the services logmail depends on: live checks, a sampled history, and transitions.

Each check is a callable that returns (or raises) within its timeout; its latency is measured here.
The SQL database, the content store and the work queue are logmail's core: if one is down, logmail
is ``down``. Anything else down (Redis, an outbound SMTP server), or any check slower than
``SLOW_MS``, makes it ``degraded``. The sampler stores one row per service per run and tells the
platform admins only when a service's status changes, never on every failing sample.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, text

from logmail.store.database import Database
from logmail.store.models_health import ServiceHealth

log = logging.getLogger("logmail.health")

CORE = ("database", "content", "queue")
SLOW_MS = 1000.0
CHECK_TIMEOUT = 5.0
PRUNE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Sample:
    service: str
    status: str  # up | degraded | down
    latency_ms: float | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "status": self.status, "latencyMs": self.latency_ms, "detail": self.detail}


def overall(samples: list[Sample]) -> str:
    if any(s.status == "down" and s.service in CORE for s in samples):
        return "down"
    if any(s.status != "up" for s in samples):
        return "degraded"
    return "healthy"


class HealthService:
    def __init__(self, db: Database, checks: dict[str, Callable[[], Any]], *, clock: Callable[[], int],
                 owner: str = "", on_transition: Callable[[str, str | None, str, Sample], None] | None = None) -> None:
        self.db = db
        self.checks = dict(checks)
        self._clock = clock
        self.owner = owner or socket.gethostname()
        self.on_transition = on_transition

    def add_check(self, name: str, check: Callable[[], Any]) -> None:
        self.checks[name] = check

    def check_all(self, timeout: float = CHECK_TIMEOUT) -> list[Sample]:
        """Every check at once, each in its own thread, none allowed longer than ``timeout``."""
        if not self.checks:
            return []
        pool = ThreadPoolExecutor(max_workers=len(self.checks), thread_name_prefix="logmail-health")
        try:
            futures = {name: pool.submit(_timed, check) for name, check in self.checks.items()}
            samples = []
            deadline = time.monotonic() + timeout
            for name, future in futures.items():
                try:
                    latency, error = future.result(timeout=max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    samples.append(Sample(name, "down", None, f"no answer within {timeout:.0f} s"))
                    continue
                if error is not None:
                    samples.append(Sample(name, "down", latency, error))
                else:
                    samples.append(Sample(name, "degraded" if latency > SLOW_MS else "up", latency,
                                          f"slow: {latency:.0f} ms" if latency > SLOW_MS else None))
            return samples
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a hung check must not hold the answer up

    def detailed(self) -> dict[str, Any]:
        samples = self.check_all()
        return {"status": overall(samples), "checkedAt": self._clock(), "services": [s.to_json() for s in samples]}

    # -- the sampler ----------------------------------------------------------------------------

    def sample(self) -> list[Sample]:
        """Check everything, store the results, and report the services whose status changed."""
        samples = self.check_all()
        now = self._clock()
        previous = self.latest_statuses()
        with self.db.write() as session:
            session.add_all(ServiceHealth(service=s.service, status=s.status, latency_ms=s.latency_ms,
                                          detail=(s.detail or None) and s.detail[:1000], checked_by=self.owner,
                                          checked_at=now) for s in samples)
        for s in samples:
            before = previous.get(s.service)
            # up and degraded both serve; only crossing to or from down is worth waking someone for.
            if (before == "down") != (s.status == "down") and not (before is None and s.status != "down"):
                log.warning("service %s is now %s (was %s)", s.service, s.status, before or "unknown")
                if self.on_transition is not None:
                    try:
                        self.on_transition(s.service, before, s.status, s)
                    except Exception:  # an alert that fails must not stop the sampling
                        log.exception("could not tell anyone that %s is %s", s.service, s.status)
        return samples

    def latest_statuses(self) -> dict[str, str]:
        with self.db.read() as session:
            latest = (select(ServiceHealth.service, func.max(ServiceHealth.id).label("id"))
                      .group_by(ServiceHealth.service).subquery())
            rows = session.execute(select(ServiceHealth.service, ServiceHealth.status)
                                   .join(latest, latest.c.id == ServiceHealth.id)).all()
        return {r.service: r.status for r in rows}

    def latest(self) -> dict[str, Any]:
        """The last stored sample of each service (``GET /admin/health``)."""
        with self.db.read() as session:
            latest = (select(ServiceHealth.service, func.max(ServiceHealth.id).label("id"))
                      .group_by(ServiceHealth.service).subquery())
            rows = session.execute(select(ServiceHealth).join(latest, latest.c.id == ServiceHealth.id)
                                   .order_by(ServiceHealth.service)).scalars().all()
            samples = [Sample(r.service, r.status, r.latency_ms, r.detail) for r in rows]
            checked = {r.service: r.checked_at for r in rows}
        return {"status": overall(samples) if samples else "unknown",
                "services": [{**s.to_json(), "checkedAt": checked[s.service]} for s in samples]}

    def history(self, *, service: str | None, since_ms: int, limit: int, offset: int) -> tuple[list[dict], int]:
        conds = [ServiceHealth.checked_at >= since_ms]
        if service:
            conds.append(ServiceHealth.service == service)
        with self.db.read() as session:
            total = session.execute(select(func.count()).select_from(ServiceHealth).where(*conds)).scalar_one()
            rows = session.execute(select(ServiceHealth).where(*conds)
                                   .order_by(ServiceHealth.checked_at.desc(), ServiceHealth.id.desc())
                                   .limit(limit).offset(offset)).scalars().all()
        return [{"service": r.service, "status": r.status, "latencyMs": r.latency_ms, "detail": r.detail,
                 "checkedAt": r.checked_at, "checkedBy": r.checked_by} for r in rows], total

    def prune(self, older_than_ms: int) -> int:
        deleted = 0
        while True:
            with self.db.write() as session:
                ids = session.execute(select(ServiceHealth.id).where(ServiceHealth.checked_at < older_than_ms)
                                      .limit(PRUNE_BATCH)).scalars().all()
                if ids:
                    session.execute(delete(ServiceHealth).where(ServiceHealth.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < PRUNE_BATCH:
                return deleted


def _timed(check: Callable[[], Any]) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a check's failure is its result
        return (time.perf_counter() - t0) * 1000, _describe(exc)
    return (time.perf_counter() - t0) * 1000, None


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:300]


def core_checks(db: Database, content, work_queue, cache, *, cache_configured: bool,
                queue_name: str = "ingest") -> dict[str, Callable[[], Any]]:
    """The checks of logmail's own stores; Redis only when one is configured."""
    def database() -> None:
        with db.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()

    checks: dict[str, Callable[[], Any]] = {
        "database": database,
        "content": content.ping,
        "queue": lambda: work_queue.depth(queue_name),
    }
    if cache_configured:
        primary = getattr(cache, "primary", cache)  # past the memory fallback: is Redis itself there?
        checks["cache"] = primary.ping
    return checks
