"""The Sanic application factory. Nothing is created at import time."""

from __future__ import annotations

import itertools

from sanic import Sanic
from sanic.config import Config

from logmail.api import health, messages, openapi
from logmail.api.auth import install_auth
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
    app = Sanic(f"logmail-{next(_names)}", config=config, configure_logging=False)
    app.ctx.services = services
    install_error_handlers(app)
    install_auth(app)
    for bp in (health.bp, openapi.bp, messages.bp):
        app.blueprint(bp)
    return app
