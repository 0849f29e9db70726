"""How long the first start after upgrading takes on SQLite while 0009 rebuilds ``messages``.

Schema revision 0009 gives SQLite's ``messages`` table AUTOINCREMENT, which SQLite can only do by
copying the table. This builds a database at revision 0008 holding ``--messages`` rows (with a
recipient and a tag each, so the children are there to keep), then times ``upgrade()`` as the
daemon runs it on start, and checks nothing was lost.

    .venv/bin/python benchmarks/sqlite_rebuild.py --messages 200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from alembic import command
from sqlalchemy import text

from logmail.store.database import Database
from logmail.store.migrate import alembic_config, upgrade

BATCH = 10_000


def build(db: Database, count: int) -> None:
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organizations (uuid, name, status, is_builtin, tier, created_at) "
                          "VALUES ('bench', 'bench', 'active', 0, 'free', 0)"))
    for start in range(0, count, BATCH):
        rows = [{"u": f"m{n:09}", "s": f"Subject number {n} about an invoice", "a": f"sender{n % 500}@example.org",
                 "t": n * 1000} for n in range(start, min(start + BATCH, count))]
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO messages (uuid, organization_id, ingest_id, source, raw_key, subject, from_name, "
                "from_address, \"to\", cc, envelope_from, envelope_to, received_at, size, snippet, attachment_count, "
                "parse_errors, is_read) VALUES (:u, 1, :u, 'smtp', 'raw/' || :u, :s, 'Sender', :a, "
                "'[{\"address\": \"dev@example.org\"}]', '[]', :a, '[\"dev@example.org\"]', :t, 7500, :s, 0, '[]', 0)"),
                rows)
            conn.execute(text("INSERT INTO message_recipients (message_id, address, organization_id) "
                              "SELECT id, 'dev@example.org', 1 FROM messages WHERE id > :low"), {"low": start})
            conn.execute(text("INSERT INTO message_tags (message_id, tag, organization_id) "
                              "SELECT id, 'bench', 1 FROM messages WHERE id > :low"), {"low": start})


def counts(db: Database) -> tuple[int, int, int]:
    with db.engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # type: ignore[return-value]
                     for t in ("messages", "message_recipients", "message_tags"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logmail-rebuild-") as tmp:
        path = Path(tmp) / "logmail.db"
        db = Database(f"sqlite:///{path}")
        started = time.monotonic()
        build(db, args.messages)
        print(f"built {args.messages:,} messages at 0008 in {time.monotonic() - started:.1f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)")
        before = counts(db)
        started = time.monotonic()
        upgrade(db)
        took = time.monotonic() - started
        after = counts(db)
        db.dispose()
    print(f"upgrade to head: {took:.2f} s, {took / args.messages * 100_000:.2f} s per 100,000 messages")
    print(f"rows before {before}, after {after}: {'kept' if before == after else 'LOST'}")
    return 0 if before == after else 2


if __name__ == "__main__":
    sys.exit(main())
