"""Builds logmail's services from settings: the one place that knows which backend is which."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from logmail.config import Settings
from logmail.errors import StorageUnavailableError
from logmail.queue.base import WorkQueue, open_queue
from logmail.services.accept import DurableAcceptor
from logmail.services.accounts import AccountService
from logmail.services.addresses import AddressService
from logmail.services.credentials import KEY_FILE, CredentialVault
from logmail.services.health import HealthService, core_checks
from logmail.services.api_tokens import ApiTokenService
from logmail.services.auth import AuthService
from logmail.services.bootstrap import BootstrapResult, bootstrap
from logmail.services.ingest import IngestService
from logmail.services.messages import MessageService
from logmail.services.notifications import NotificationService
from logmail.services.outbound import OutboundService
from logmail.services.policy import PolicyService
from logmail.services.quota_alerts import QuotaWatcher
from logmail.services.retention import RetentionService
from logmail.services.tiers import TierService
from logmail.services.tokens import TokenAuthenticator
from logmail.services.usage import UsageService
from logmail.services.users import UserService
from logmail.services.webhooks import WebhookService
from logmail.store.cache import Cache, open_cache
from logmail.store.content import ContentStore, open_content_store
from logmail.store.database import Database
from logmail.store.models import now_ms

if TYPE_CHECKING:
    from logmail.services.admin import PlatformAdmin
    from logmail.services.billing import BillingService

log = logging.getLogger("logmail")


@dataclass
class Services:
    settings: Settings
    db: Database
    content: ContentStore
    queue: WorkQueue
    boot: BootstrapResult

    @cached_property
    def acceptor(self) -> DurableAcceptor:
        return DurableAcceptor(self.content, self.queue)

    @cached_property
    def ingest(self) -> IngestService:
        ingest = IngestService(self.db, self.content, default_organization_id=self.boot.organization_id)
        ingest.webhooks = self.webhooks  # message.received, queued in the transaction that stores the mail
        if self.platform:  # only platform tiers have limits to warn about
            ingest.after_stored = self.quota_alerts.observe
        return ingest

    @cached_property
    def messages(self) -> MessageService:
        messages = MessageService(self.db, self.content, audit=self.auth.audit, events=self.auth.events)
        messages.webhooks = self.webhooks  # message.deleted
        return messages

    @cached_property
    def webhooks(self) -> WebhookService:
        """Endpoints and deliveries; ``emit(organization_id, event, data)`` queues an event for them."""
        # Lazily: ingest (even in a worker process) uses this service without the vault, tiers or auth.
        return WebhookService(self.db, lambda: self.vault, self.settings.webhooks,
                              tier_of=lambda org: self.policy.organization_tier(org),
                              audit=lambda: self.auth.audit, events=lambda: self.auth.events)

    @cached_property
    def retention(self) -> RetentionService:
        return RetentionService(self.db, self.content, self.tiers)

    @property
    def platform(self) -> bool:
        return self.settings.mode == "platform"

    @cached_property
    def tiers(self) -> TierService:
        return TierService(self.db, ttl=max(self.settings.policy.cache_seconds, 0.0))

    @cached_property
    def policy(self) -> PolicyService:
        """The admission decision every entrance (SMTP, LMTP, Postfix policy, /ingest) asks."""
        return PolicyService(self.db, self.cache, self.tiers, platform=self.platform,
                             default_organization_id=self.boot.organization_id,
                             cache_seconds=self.settings.policy.cache_seconds)

    @cached_property
    def addresses(self) -> AddressService:
        return AddressService(self.db, self.tiers, self.policy, self.auth.audit, self.settings, self.auth.now)

    @cached_property
    def usage(self) -> UsageService:
        return UsageService(self.db, self.cache, self.tiers, self.policy, platform=self.platform, clock=self.auth.now)

    @cached_property
    def accounts(self) -> AccountService:
        """Mailbox accounts (IMAP/POP3) users register for pulling."""
        return AccountService(self.db, self.vault, self.cache, self.auth.audit, self.auth.events,
                              self.settings.accounts, self.auth.now)

    @cached_property
    def health(self) -> HealthService:
        """Checks of the stores; the daemon adds the outbound SMTP servers and the alert hook."""
        checks = core_checks(self.db, self.content, self.queue, self.cache,
                             cache_configured=bool(self.settings.cache.url))
        return HealthService(self.db, checks, clock=self.auth.now)

    @cached_property
    def vault(self) -> CredentialVault:
        """Encrypts mailbox passwords; the key is outside the database."""
        return CredentialVault(configured_keys=self.settings.accounts.encryption_keys,
                               key_file=self.settings.data_path / KEY_FILE)

    @cached_property
    def cache(self) -> Cache:
        c = self.settings.cache
        return open_cache(c.url, prefix=c.prefix, retry_interval=c.retry_interval)

    @cached_property
    def auth(self) -> AuthService:
        """Logins, sessions and the clock every auth decision reads (swap ``auth.clock`` to move time)."""
        auth = AuthService(self.settings, self.db, self.cache)
        auth.sessions.notifications = self.notifications  # new-device logins, sessions ended
        return auth

    @cached_property
    def tokens(self) -> TokenAuthenticator:
        return TokenAuthenticator(self.db, self.cache, clock=self.auth.now)

    @cached_property
    def api_tokens(self) -> ApiTokenService:
        return ApiTokenService(self.db, self.tokens, self.auth.audit, self.auth.events, self.auth.now)

    @cached_property
    def users(self) -> UserService:
        a = self.auth
        users = UserService(self.db, a.passwords, a.audit, a.events, a.sessions, self.tokens, self.settings.auth,
                            a.now, self.cache)
        if self.platform:
            users.new_organisation_tier = self.settings.platform.default_tier
        return users

    @cached_property
    def admin(self) -> "PlatformAdmin":
        """Platform administration (the /admin API and `logmail admin`)."""
        from logmail.services.admin import build_admin

        return build_admin(self)

    @cached_property
    def outbound(self) -> OutboundService:
        """Mail logmail sends; the daemon gives it its SMTP sender (logmail.daemon.outbound_job)."""
        return OutboundService(self.db, self.settings.outbound, clock=self._now)

    @cached_property
    def notifications(self) -> NotificationService:
        return NotificationService(self.db, self.outbound, clock=self._now)

    @cached_property
    def quota_alerts(self) -> QuotaWatcher:
        watcher = QuotaWatcher(self.db, self.tiers, self.notifications, clock=self._now)
        watcher.webhooks = self.webhooks
        return watcher

    @cached_property
    def billing(self) -> "BillingService":
        """Stripe Checkout, the Stripe webhook and billing status (503s while no Stripe keys are set)."""
        from logmail.services.billing import BillingService

        return BillingService(self.db, self.settings.billing, self.tiers, self.policy, self.usage, self.auth.audit,
                              self.notifications, clock=self._now)

    def _now(self) -> int:
        """The auth clock once auth exists (tests move it); an ingest worker need not build auth for it."""
        auth = self.__dict__.get("auth")
        return auth.now() if auth is not None else now_ms()

    def close(self) -> None:
        if "usage" in self.__dict__:
            self.usage.flush()
        if "acceptor" in self.__dict__:
            self.acceptor.close()
        self.queue.close()
        if "cache" in self.__dict__:
            self.cache.close()
        self.content.close()
        self.db.dispose()


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Open the engines named by the settings, bring the schema up to date and run first-start setup.

    Raises StorageUnavailableError when a store cannot be reached or opened (retry later), and
    ConfigError when the settings themselves are wrong.
    """
    try:
        return _build(settings, migrate)
    except (OSError, SQLAlchemyError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StorageUnavailableError(f"cannot open logmail's storage: {reason}") from exc


def _build(settings: Settings, migrate: bool) -> Services:
    try:
        # It holds the mail itself, the databases, keys and owner.token: only logmail's user may look.
        settings.data_path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass  # an existing directory keeps the permissions its operator gave it
    db = Database(settings.database_url, synchronous=settings.database.sqlite_synchronous,
                  pool_size=settings.database.pool_size, pool_recycle=settings.database.pool_recycle)
    if migrate:
        from logmail.store.migrate import upgrade  # Alembic costs ~10 MB: only those who migrate load it

        upgrade(db)
    content = open_content_store(settings.content_url, compression_level=settings.content.compression_level,
                                 synchronous=settings.database.sqlite_synchronous,
                                 gridfs_threshold=settings.content.gridfs_threshold)
    work_queue = open_queue(settings.queue.url, db, lease_seconds=settings.queue.lease_seconds,
                            max_attempts=settings.queue.max_attempts,
                            retry_base_delay=settings.queue.retry_base_delay,
                            prefix=settings.queue.prefix, prefetch=settings.queue.prefetch)
    boot = bootstrap(db, settings.data_path)
    return Services(settings=settings, db=db, content=content, queue=work_queue, boot=boot)
