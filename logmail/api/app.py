"""The Sanic application factory. Nothing is created at import time."""

from __future__ import annotations

import itertools

from sanic import Sanic
from sanic.config import Config

from logmail.api import (
    addresses,
    admin_api,
    admin_emails,
    admin_platform,
    audit,
    auth_routes,
    billing,
    events,
    health,
    ingest,
    mailbox_accounts,
    messages,
    notifications,
    openapi,
    tokens,
    usage,
    users,
    webhooks,
)
from logmail.api.authn import install_authentication
from logmail.api.cors import install_cors
from logmail.api.errors import install_error_handlers

_names = itertools.count(1)


def create_app(services) -> Sanic:
    settings = services.settings
    config = Config(env_prefix="LOGMAIL_SANIC_")
    config.REQUEST_MAX_SIZE = settings.api.max_body_size
    config.REQUEST_TIMEOUT = settings.api.request_timeout
    config.RESPONSE_TIMEOUT = settings.api.request_timeout
    config.KEEP_ALIVE_TIMEOUT = 30
    config.ACCESS_LOG = False
    config.NOISY_EXCEPTIONS = False
    config.FALLBACK_ERROR_FORMAT = "json"
    config.TOUCHUP = False
    config.AUTO_RELOAD = False
    if settings.auth.behind_tls_proxy:
        # One proxy in front: its X-Forwarded-For and X-Forwarded-Proto say who the client is and
        # whether it used TLS. Without the setting those headers are the client's own words, ignored.
        config.PROXIES_COUNT = 1
    app = Sanic(f"logmail-{next(_names)}", config=config, configure_logging=False)
    app.ctx.services = services
    install_error_handlers(app)
    install_cors(app, settings.api.cors_origins)  # first: a preflight is answered before authentication
    install_authentication(app)
    admin_api.install_admin_trail(app)  # after authentication: it reads the principal
    for bp in (health.bp, openapi.bp, messages.bp, auth_routes.bp, tokens.bp, users.bp, audit.bp, addresses.bp,
               usage.bp, ingest.bp, admin_platform.bp, mailbox_accounts.bp,
               webhooks.bp, notifications.bp, admin_emails.bp, billing.bp, events.bp,
               admin_api.bp):
        app.blueprint(bp)
    _count_api_usage(app)
    return app


def _count_api_usage(app: Sanic, interval: float = 5.0) -> None:
    """API calls are counted in memory and written every ``interval`` seconds, and at shutdown."""
    import asyncio

    async def flush_forever(app: Sanic) -> None:
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(app.ctx.services.usage.flush)

    @app.after_server_start
    async def _start(app: Sanic) -> None:
        app.ctx.usage_flusher = asyncio.get_running_loop().create_task(flush_forever(app))

    @app.before_server_stop
    async def _stop(app: Sanic) -> None:
        task = getattr(app.ctx, "usage_flusher", None)
        if task is not None:
            task.cancel()
        await asyncio.to_thread(app.ctx.services.usage.flush)
