"""The scheduled jobs of the daemon, each only its business step."""

from __future__ import annotations

import time
from collections.abc import Callable

from logmail.config import RetentionSettings
from logmail.daemon.scheduler import ScheduledJob
from logmail.services.retention import RetentionService

class RetentionJob(ScheduledJob):
    name = "retention"

    def __init__(self, service: RetentionService, settings: RetentionSettings,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.service = service
        self.settings = settings
        self.interval = float(settings.interval)
        self.lease_seconds = max(120.0, settings.interval / 2)
        self.clock = clock

    def run(self, keep_alive: Callable[[], bool]) -> None:
        # Each organisation's tier may keep mail for fewer days than the installation-wide limit.
        self.service.apply_policy(self.clock(), self.settings.max_age_days, batch_size=self.settings.batch_size,
                                  keep_alive=keep_alive)
