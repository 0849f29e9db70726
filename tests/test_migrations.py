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


def _schema_drift(url: str) -> list:
    from alembic.migration import MigrationContext
    from alembic.autogenerate import compare_metadata

    from logmail.store.models import Base

    db = Database(url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        db.dispose()
    # The full-text table is created by hand in 0001 and has no model.
    return [d for d in diffs if "message_search" not in repr(d)]


def test_migrations_build_exactly_the_models_on_sqlite(tmp_path):
    assert _schema_drift(f"sqlite:///{tmp_path / 'x.db'}") == []


@pytest.mark.mariadb
def test_migrations_build_exactly_the_models_on_mariadb():
    assert _schema_drift(mariadb_database()) == []


def test_tier_migration_seeds_tiers_and_counts_existing_mail(tmp_path):
    from alembic import command
    from sqlalchemy import inspect, text

    from logmail.store.migrate import alembic_config

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    cfg = alembic_config()

    def to(revision: str, move=command.upgrade) -> None:
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            move(cfg, revision)

    to("0003")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organizations (uuid, name, status, is_builtin, tier, created_at) "
                          "VALUES ('u1', 'o', 'active', 0, 'free', 0)"))
        for i, size in enumerate((100, 250)):
            conn.execute(text(
                "INSERT INTO messages (uuid, organization_id, ingest_id, source, raw_key, subject, from_name, "
                "from_address, \"to\", cc, envelope_from, envelope_to, received_at, size, snippet, "
                "attachment_count, parse_errors, is_read) VALUES (:u, 1, :u, 'smtp', 'k', '', '', '', '[]', "
                "'[]', '', '[]', 0, :s, '', 0, '[]', 0)"), {"u": f"m{i}", "s": size})
        conn.execute(text("INSERT INTO email_addresses (uuid, organization_id, address, created_at) "
                          "VALUES ('a1', 1, 'dev@example.org', 0)"))
    upgrade(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT storage_bytes, message_count FROM organizations")).one() == (350, 2)
        assert conn.execute(text("SELECT domain, kind FROM email_addresses")).one() == ("example.org", "exact")
        names = set(conn.execute(text("SELECT name FROM tier_limits")).scalars())
    assert {"unlimited", "free", "pro", "enterprise"} <= names
    to("0003", command.downgrade)
    assert "tier_limits" not in inspect(db.engine).get_table_names()
    assert upgrade(db) is True
    db.dispose()


def _insert_message(conn, n: int) -> int:
    from sqlalchemy import text

    conn.execute(text(
        "INSERT INTO messages (uuid, organization_id, ingest_id, source, raw_key, subject, from_name, from_address, "
        "\"to\", cc, envelope_from, envelope_to, received_at, size, snippet, attachment_count, parse_errors, is_read) "
        "VALUES (:u, 1, :u, 'smtp', 'k', '', '', '', '[]', '[]', '', '[]', 0, 10, '', 0, '[]', 0)"), {"u": f"m{n}"})
    return conn.execute(text("SELECT id FROM messages WHERE uuid = :u"), {"u": f"m{n}"}).scalar_one()


def test_sqlite_message_ids_are_never_reused_and_the_rebuild_keeps_every_child_row(tmp_path):
    """0009 rebuilds messages with AUTOINCREMENT; foreign keys must not cascade the old table's drop."""
    from alembic import command
    from sqlalchemy import text

    from logmail.store.migrate import alembic_config

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    children = ("attachments", "message_recipients", "message_tags")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organizations (uuid, name, status, is_builtin, tier, created_at) "
                          "VALUES ('o1', 'o', 'active', 0, 'free', 0)"))
        ids = [_insert_message(conn, n) for n in range(3)]
        for i in ids:
            conn.execute(text("INSERT INTO attachments (uuid, message_id, organization_id, position, content_type, "
                              "size, inline, sha256, content_key) VALUES (:u, :m, 1, 0, 'text/plain', 1, 0, 's', 'k')"),
                         {"u": f"a{i}", "m": i})
            conn.execute(text("INSERT INTO message_recipients (message_id, address, organization_id) "
                              "VALUES (:m, 'to@example.org', 1)"), {"m": i})
            conn.execute(text("INSERT INTO message_tags (message_id, tag, organization_id) VALUES (:m, 'x', 1)"),
                         {"m": i})
    indexes_before = _message_indexes(db)

    assert upgrade(db) is True
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'messages'")).scalar_one().count(
            "AUTOINCREMENT") == 1
        assert [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in children] == [3, 3, 3]
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1  # back on for the daemon's connections
    assert _message_indexes(db) == indexes_before

    with db.engine.begin() as conn:  # delete the newest: before 0009 its id went to the next message
        conn.execute(text("DELETE FROM messages WHERE id = :m"), {"m": ids[-1]})
        assert [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in children] == [2, 2, 2]
        assert _insert_message(conn, 99) > ids[-1]
    db.dispose()


def _message_indexes(db) -> set[tuple]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return {(row[0], row[1]) for row in conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"))}


def test_a_schema_upgrade_that_would_orphan_rows_is_rolled_back(tmp_path, monkeypatch):
    """Foreign keys are off while SQLite tables are rebuilt, so the upgrade checks them itself."""
    from sqlalchemy import text

    from logmail.errors import StorageUnavailableError
    from logmail.store import migrate

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    real_upgrade = migrate.command.upgrade

    def orphaning_upgrade(cfg, revision):
        real_upgrade(cfg, revision)
        conn = cfg.attributes["connection"]
        conn.execute(text("INSERT INTO message_tags (message_id, tag, organization_id) VALUES (12345, 'x', 1)"))

    monkeypatch.setattr(migrate.command, "upgrade", orphaning_upgrade)
    with pytest.raises(StorageUnavailableError, match="pointing at nothing"):
        upgrade(db)
    assert current_revision(db) is None  # rolled back whole
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    db.dispose()
