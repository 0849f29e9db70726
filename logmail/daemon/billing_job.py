"""The daemon's part in billing: the job that ends paid periods."""

from __future__ import annotations

from collections.abc import Callable

from logmail.config import BillingSettings
from logmail.daemon.scheduler import ScheduledJob


class BillingDowngradeJob(ScheduledJob):
    """Every ``billing.interval`` seconds (one daemon per interval, by lease): organisations whose
    subscription ended and whose paid period is now over go back to ``billing.free_tier``."""

    name = "billing-downgrades"

    def __init__(self, service, settings: BillingSettings) -> None:
        self.service = service
        self.interval = float(settings.interval)
        self.lease_seconds = max(60.0, settings.interval * 2.0)

    def run(self, keep_alive: Callable[[], bool]) -> None:
        self.service.apply_due_downgrades()
