"""SQLite: message ids are never handed out twice (AUTOINCREMENT)

Revision ID: 0009
Revises: 0008

Without AUTOINCREMENT SQLite gives a new row the largest id in the table plus one, so after the
newest messages are deleted (``DELETE /messages`` deletes them all) the next message takes an id
that was already used. Clients resume from ids: the ``Last-Event-ID`` of ``GET /events`` and the
``/messages`` cursors would then skip mail that arrived after the delete. The table is rebuilt
with AUTOINCREMENT, whose counter only goes up; rows, indexes and the children's keys are kept.
MySQL and MariaDB already keep their counter (InnoDB persists it since MariaDB 10.2.4 and MySQL 8),
so there is nothing to do there.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # migrate.py turns foreign keys off around this: dropping the old table must not cascade.
    with op.batch_alter_table("messages", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    # Nothing to undo: earlier code works unchanged on the AUTOINCREMENT table, and a second rebuild
    # by hand (outside migrate.py, with foreign keys on) would cascade the drop to every child row.
    pass
