"""Migrations: applied on start, idempotent, and safe when several daemons start together."""

from __future__ import annotations

import threading

import pytest

from conftest import mariadb_database
from logmail.store.database import Database
from logmail.store.migrate import current_revision, head_revision, upgrade


def test_upgrade_is_idempotent_on_sqlite(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert upgrade(db) is True
    assert upgrade(db) is False
    assert current_revision(db) == head_revision()
    db.dispose()


@pytest.mark.mariadb
def test_daemons_starting_together_migrate_once(tmp_path):
    url = mariadb_database()
    results, errors = [], []
    barrier = threading.Barrier(4)

    def start() -> None:
        db = Database(url)
        try:
            barrier.wait()
            results.append(upgrade(db))
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    db = Database(url)
    assert current_revision(db) == head_revision()
    with db.engine.connect() as conn:  # the lock was released: it can be taken at once
        assert conn.exec_driver_sql("SELECT GET_LOCK('logmail_migrations', 0)").scalar() == 1
    db.dispose()


def test_sessions_and_audit_migration_goes_down_and_up_again(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from logmail.store.migrate import alembic_config

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(db)
    new_tables = {"sessions", "refresh_tokens", "security_events", "audit_log"}
    assert new_tables <= set(inspect(db.engine).get_table_names())
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert not new_tables & set(inspect(db.engine).get_table_names())
    assert upgrade(db) is True
    assert new_tables <= set(inspect(db.engine).get_table_names())
    db.dispose()


@pytest.mark.mariadb
def test_first_starts_together_create_one_builtin_organisation(tmp_path):
    from sqlalchemy import func, select

    from logmail.services.bootstrap import ensure_builtin_organization
    from logmail.store.models import Organization

    url = mariadb_database()
    db = Database(url)
    upgrade(db)
    barrier = threading.Barrier(4)
    found, errors = [], []

    def start() -> None:
        own = Database(url)
        try:
            barrier.wait()
            found.append(ensure_builtin_organization(own).id)
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(found)) == 1
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(Organization)
                               .where(Organization.is_builtin.is_(True))).scalar_one() == 1
    db.dispose()
