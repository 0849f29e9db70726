"""mailbox accounts (IMAP/POP3 pulling), their sync state, and the account of pulled messages

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}
_JSON = sa.Text().with_variant(sa.dialects.mysql.MEDIUMTEXT(), "mysql")


def upgrade() -> None:
    op.create_table(
        "mail_accounts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("email_address", sa.String(length=320), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("encryption", sa.String(length=10), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password_encrypted", sa.Text(), nullable=False),
        sa.Column("folders", _JSON, nullable=False),
        sa.Column("use_idle", sa.Boolean(), nullable=False),
        sa.Column("is_sync_enabled", sa.Boolean(), nullable=False),
        sa.Column("sync_interval", sa.Integer(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_syncing", sa.Boolean(), nullable=False),
        sa.Column("sync_started_at", sa.BigInteger(), nullable=True),
        sa.Column("last_sync_at", sa.BigInteger(), nullable=True),
        sa.Column("next_sync_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_error_at", sa.BigInteger(), nullable=True),
        sa.Column("auth_failed", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("sync_stats", _JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
        **_MYSQL,
    )
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_mail_accounts_org_user", ["organization_id", "user_id"], unique=False)
        batch_op.create_index("ix_mail_accounts_due", ["is_enabled", "is_sync_enabled", "next_sync_at"],
                              unique=False)

    op.create_table(
        "mail_account_folders",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["mail_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "folder"),
        **_MYSQL,
    )
    op.create_table(
        "mail_account_seen",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("key", sa.String(length=191), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["mail_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "key"),
        **_MYSQL,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("folder", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("folder")
        batch_op.drop_column("account_id")
    op.drop_table("mail_account_seen")
    op.drop_table("mail_account_folders")
    op.drop_table("mail_accounts")
