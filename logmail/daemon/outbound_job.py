"""The daemon's part in outbound mail: it gives the service its SMTP sender and runs the retry job."""

from __future__ import annotations

from collections.abc import Callable

from logmail.config import OutboundSettings
from logmail.daemon.scheduler import ScheduledJob
from logmail.services.outbound import OutboundService


def install_sender(services) -> None:
    """Compose: the outbound service sends through SMTP (services never import the protocol code)."""
    from logmail.smtp.outbound_sender import SmtpOutboundSender

    services.outbound.sender = SmtpOutboundSender(services.settings.outbound)


class OutboundRetryJob(ScheduledJob):
    """Every ``outbound.interval`` seconds: expire, reconcile and send the outbound mail that is due.

    The runner's lease makes one daemon run it per interval; each mail is also claimed on its own,
    so ``POST /admin/emails/process`` running at the same moment never sends a mail twice either.
    """

    name = "outbound"

    def __init__(self, service: OutboundService, settings: OutboundSettings) -> None:
        self.service = service
        self.interval = float(settings.interval)
        # One mail may hold the run for up to a claim's length between two keep-alives.
        self.lease_seconds = max(120.0, service.claim_ms / 1000 + 60)

    def run(self, keep_alive: Callable[[], bool]) -> None:
        self.service.process_due(keep_alive=keep_alive)
