"""Apply the Alembic migrations; ``logmail daemon`` does this on every start."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from logmail.errors import StorageUnavailableError
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


LOCK_TIMEOUT = 300


def upgrade(db: Database) -> bool:
    """Bring the schema to the newest revision; returns whether anything was applied.

    Several daemons may start together: on MySQL one takes a named lock and migrates while the
    others wait for it, then find nothing left to do. (SQLite serialises on BEGIN IMMEDIATE.)
    """
    head = head_revision()
    if current_revision(db) == head:
        return False
    cfg = alembic_config()
    with db.engine.connect() as lock_conn:
        if db.dialect == "mysql":
            got = lock_conn.exec_driver_sql(f"SELECT GET_LOCK('logmail_migrations', {LOCK_TIMEOUT})").scalar()
            if got != 1:
                raise StorageUnavailableError("another daemon has been migrating the database for over "
                                              f"{LOCK_TIMEOUT} s; not starting on a schema in flux")
        try:
            if current_revision(db) == head:  # someone else migrated while we waited
                return False
            _apply(db, cfg)
        finally:
            if db.dialect == "mysql":
                lock_conn.exec_driver_sql("SELECT RELEASE_LOCK('logmail_migrations')")
    log.info("database schema upgraded to %s", head)
    return True


def _apply(db: Database, cfg: Config) -> None:
    with db.engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        raw = conn.connection.driver_connection if db.dialect == "sqlite" else None
        if raw is not None:
            # SQLite cannot alter most things in place, so a migration rebuilds the table and drops
            # the old copy; with foreign keys on, that drop would first delete every child row (the
            # ON DELETE CASCADE of parts, recipients, attachments). The pragma is ignored inside a
            # transaction, so it goes off before BEGIN, and the keys are checked before COMMIT.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                before = _dangling_rows(conn) if raw is not None else 0
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if raw is not None and (after := _dangling_rows(conn)) > before:
                    raise StorageUnavailableError(f"the schema upgrade would leave {after - before} row(s) "
                                                  "pointing at nothing; it was rolled back")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def _dangling_rows(conn) -> int:
    return len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
