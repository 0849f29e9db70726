"""Health sampling in the daemon: the job, and the checks only the daemon may assemble."""

from __future__ import annotations

import logging
from collections.abc import Callable

from logmail.config import HealthSettings, OutboundSettings
from logmail.daemon.scheduler import ScheduledJob
from logmail.services.health import HealthService, Sample

log = logging.getLogger("logmail.health")
DAY_MS = 86_400_000


class HealthSampler(ScheduledJob):
    """Every ``health.interval`` seconds (one daemon per interval, by lease): sample every service,
    keep the history, alert on transitions, and prune what is older than ``health.history_days``."""

    name = "health"

    def __init__(self, service: HealthService, settings: HealthSettings, clock: Callable[[], int]) -> None:
        self.service = service
        self.settings = settings
        self.interval = float(settings.interval)
        self.lease_seconds = max(60.0, settings.interval * 2.0)
        self.clock = clock

    def run(self, keep_alive: Callable[[], bool]) -> None:
        self.service.sample()
        self.service.prune(self.clock() - self.settings.history_days * DAY_MS)


def add_outbound_checks(service: HealthService, outbound: OutboundSettings) -> None:
    """The outbound SMTP servers, when configured: does each greet us?"""
    from logmail.smtp.probe import smtp_greets

    timeout = min(outbound.timeout, 5.0)
    for name, host, port in (("smtp-primary", outbound.smtp_host, outbound.smtp_port),
                             ("smtp-backup", outbound.smtp_backup_host, outbound.smtp_backup_port)):
        if host:
            service.add_check(name, lambda host=host, port=port: smtp_greets(host, port, timeout=timeout))


def alert_admins(services) -> Callable[[str, str | None, str, Sample], None]:
    """The transition hook: the platform admins' notifications, once the notifications exist."""
    def transition(service: str, before: str | None, now: str, sample: Sample) -> None:
        notifications = getattr(services, "notifications", None)
        if notifications is not None and hasattr(notifications, "service_status_changed"):
            notifications.service_status_changed(service, before, now, sample.detail)
    return transition
