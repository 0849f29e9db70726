"""The webhook dispatcher: sends due deliveries, a few at a time, without one endpoint holding up others.

Every daemon with the scheduler role runs one. Like the mailbox sync dispatcher it holds no lease of
its own: each delivery is claimed on its own row (:class:`logmail.services.webhook_attempts.WebhookAttempts`),
so several daemons share the work and never make the same attempt twice. It looks for due
deliveries every ``webhooks.interval`` seconds, and at once when this process queues one.

Attempts run concurrently on an asyncio loop of the dispatcher's own thread: at most
``MAX_PARALLEL`` in all and ``PER_ENDPOINT`` per endpoint, so an endpoint that hangs until the
timeout occupies two slots, not all of them. The database work runs in threads beside it. Once an
hour the dispatcher also deletes deliveries older than ``webhooks.history_days``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from logmail.config import WebhookSettings
from logmail.errors import LogmailError
from logmail.services.webhook_attempts import Attempt
from logmail.services.webhook_sender import Outcome, WebhookSender
from logmail.services.webhooks import WebhookService

log = logging.getLogger("logmail.webhooks")

MAX_PARALLEL = 16
PER_ENDPOINT = 2
PRUNE_EVERY_MS = 3_600_000
RECHECK_SECONDS = 0.2  # after a wake-up: the transaction that queued the delivery may commit just after


class WebhookDispatcher:
    def __init__(self, service: WebhookService, settings: WebhookSettings, *, owner: str,
                 on_disabled: Callable[[Any], None] | None = None, max_parallel: int = MAX_PARALLEL,
                 per_endpoint: int = PER_ENDPOINT, verify: ssl.SSLContext | bool = True) -> None:
        self.service = service
        self.attempts = service.attempts
        self.settings = settings
        self.owner = owner
        self.on_disabled = on_disabled
        self.max_parallel = max_parallel
        self.per_endpoint = per_endpoint
        self.verify = verify
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._running: dict[int, int] = {}  # delivery id -> webhook id, attempts in flight here
        self._tasks: set[asyncio.Task] = set()
        self._last_prune: int | None = None
        self._failing = False
        self._recheck = False

    @classmethod
    def from_services(cls, services, *, owner: str, **kwargs) -> "WebhookDispatcher":
        """The daemon's dispatcher: woken by events this process queues, and telling the notifications
        service (when there is one) about endpoints a 410 disabled."""

        def notify(hook) -> None:
            webhook_disabled = getattr(getattr(services, "notifications", None), "webhook_disabled", None)
            if webhook_disabled is not None:
                webhook_disabled(hook)

        dispatcher = cls(services.webhooks, services.settings.webhooks, owner=owner, on_disabled=notify, **kwargs)
        services.webhooks.on_queued = dispatcher.wake
        return dispatcher

    # -- running ------------------------------------------------------------------------------

    def start(self) -> "WebhookDispatcher":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="logmail-webhooks",
                                        daemon=True)
        self._thread.start()
        self._started.wait(10)
        log.info("webhook dispatcher started: every %g s, up to %d at a time", self.settings.interval,
                 self.max_parallel)
        return self

    def wake(self) -> None:
        """Look for due deliveries now (thread-safe)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not self._stopping.is_set():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has just closed
                pass

    def stop(self) -> None:
        """Stop looking; attempts in flight finish (each within the timeout) and are recorded."""
        self._stopping.set()
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(self.settings.timeout + 30)
            self._thread = None
        if self.service.on_queued == self.wake:
            self.service.on_queued = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        sender = WebhookSender(self.settings, verify=self.verify)
        self._started.set()
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick(sender)
                except Exception:  # a bug must not end webhook delivery for the daemon's lifetime
                    log.exception("webhook dispatcher: the look for due deliveries failed")
                await self._sleep()
            if self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            await sender.aclose()

    async def _sleep(self) -> None:
        assert self._wake is not None
        timeout = RECHECK_SECONDS if self._recheck else self.settings.interval
        self._recheck = False
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return
        self._wake.clear()
        self._recheck = True

    # -- one look -----------------------------------------------------------------------------

    async def tick(self, sender: WebhookSender) -> int:
        """Claim what is due (as far as there are free slots) and start it; returns how many started."""
        try:
            await self._prune_if_due()
            started = await self._dispatch(sender)
        except (LogmailError, SQLAlchemyError) as exc:
            if not self._failing:
                log.warning("webhook dispatcher cannot look for due deliveries: %s", exc)
            self._failing = True
            return 0
        if self._failing:
            log.info("webhook dispatcher: the database is back")
        self._failing = False
        return started

    async def _dispatch(self, sender: WebhookSender) -> int:
        free = self.max_parallel - len(self._running)
        if free <= 0:
            return 0
        # More candidates than free slots: other daemons may take some, and busy endpoints wait.
        candidates = await asyncio.to_thread(self.attempts.due, free * 4 + len(self._running))
        started = 0
        for delivery_id, webhook_id in candidates:
            if started >= free or self._stopping.is_set():
                break
            busy = sum(1 for w in self._running.values() if w == webhook_id)
            if delivery_id in self._running or busy >= self.per_endpoint:
                continue
            attempt = await asyncio.to_thread(self.attempts.claim, delivery_id, self.owner)
            if attempt is None:
                continue
            self._running[delivery_id] = webhook_id
            task = asyncio.get_running_loop().create_task(self._deliver(sender, attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _deliver(self, sender: WebhookSender, attempt: Attempt) -> None:
        try:
            started_at = self.service.clock()
            if attempt.secret is None:
                outcome = Outcome(None, 0, error="the endpoint's signing secret cannot be decrypted; rotate it")
            else:
                outcome = await sender.send(attempt.url, attempt.uuid, attempt.payload, attempt.secret)
            disabled = await asyncio.to_thread(self.attempts.record, attempt, self.owner, outcome, started_at)
            if disabled is not None and self.on_disabled is not None:
                await asyncio.to_thread(self._notify, disabled)
        except Exception:  # the claim runs out and the attempt is made again: at least once
            log.exception("webhook delivery %s: attempt %d could not be completed", attempt.uuid, attempt.number)
        finally:
            self._running.pop(attempt.delivery_id, None)
            if self._wake is not None and not self._stopping.is_set():
                self._wake.set()  # a free slot: deliveries left waiting for one may go now

    def _notify(self, hook) -> None:
        try:
            self.on_disabled(hook)
        except Exception:
            log.exception("webhook %s was disabled, but the notification failed", hook.uuid)

    async def _prune_if_due(self) -> None:
        now = self.service.clock()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY_MS:
            return
        self._last_prune = now
        await asyncio.to_thread(self.attempts.prune, lambda: not self._stopping.is_set())
