"""Logging set-up: named loggers per concern (``logmail.smtp``, ``logmail.ingest``...), one format."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("logmail")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # Libraries speak only when something is wrong.
    for name in ("sanic", "sanic.root", "sanic.error", "sanic.access", "sanic.server", "mail.log", "alembic", "pika"):
        logging.getLogger(name).setLevel(logging.WARNING)
