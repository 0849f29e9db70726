"""a full-text index of subjects alone, for subject: searches on MySQL/MariaDB

MATCH (subject) needs a FULLTEXT index of exactly that column. SQLite's FTS5 table filters on a
column of its one index, so there is nothing to do there.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    # As for the first index (0001): no stopwords, so "the" or "about" can be searched for.
    op.execute("SET SESSION innodb_ft_enable_stopword = OFF")
    op.execute("CREATE FULLTEXT INDEX ft_message_search_subject ON message_search (subject)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    op.execute("DROP INDEX ft_message_search_subject ON message_search")
