"""Apply the Alembic migrations; ``logmail daemon`` does this on every start."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from logmail.store.database import Database

log = logging.getLogger("logmail.store")
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> bool:
    """Bring the schema to the newest revision; returns whether anything was applied."""
    if current_revision(db) == head_revision():
        return False
    cfg = alembic_config()
    with db.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if db.dialect == "mysql":
            # Several daemons may start together: one migrates, the others wait for it.
            conn.exec_driver_sql("SELECT GET_LOCK('logmail_migrations', 300)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.info("database schema upgraded to %s", head_revision())
    return True
