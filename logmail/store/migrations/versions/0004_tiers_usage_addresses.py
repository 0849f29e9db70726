"""tiers, monthly usage, organisation domains, address kinds, message tags

Revision ID: 0004
Revises: 0003
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}
_JSON = sa.Text().with_variant(sa.dialects.mysql.MEDIUMTEXT(), "mysql")

_MB = 1024 * 1024
_GB = 1024 * _MB
_ALL = '{"api":true,"webhooks":true,"imapAccounts":true,"prioritySupport":true}'

# The examples a new installation starts with; platform admins edit them as data afterwards.
# name, display, addresses, emails/month, emails/minute, storage, retention days, size, api/minute, features
_SEED = [
    ("unlimited", "Unlimited", None, None, None, None, None, None, None, _ALL),
    ("free", "Free", 5, 1_000, 60, 100 * _MB, 7, 10 * _MB, 60,
     '{"api":true,"webhooks":false,"imapAccounts":false,"prioritySupport":false}'),
    ("pro", "Pro", 50, 50_000, 600, 5 * _GB, 30, 25 * _MB, 600,
     '{"api":true,"webhooks":true,"imapAccounts":true,"prioritySupport":false}'),
    ("enterprise", "Enterprise", 1_000, 1_000_000, 6_000, 100 * _GB, 365, 50 * _MB, 6_000, _ALL),
]


def upgrade() -> None:
    tiers = op.create_table(
        "tier_limits",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("max_addresses", sa.Integer(), nullable=True),
        sa.Column("emails_per_month", sa.BigInteger(), nullable=True),
        sa.Column("emails_per_minute", sa.Integer(), nullable=True),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("max_message_size", sa.BigInteger(), nullable=True),
        sa.Column("api_requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("features", _JSON, nullable=False),
        sa.Column("price_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        **_MYSQL,
    )
    now = int(time.time() * 1000)
    op.bulk_insert(tiers, [
        {"name": n, "display_name": d, "max_addresses": a, "emails_per_month": m, "emails_per_minute": r,
         "storage_bytes": s, "retention_days": k, "max_message_size": z, "api_requests_per_minute": q,
         "features": f, "price_id": None, "created_at": now, "updated_at": now}
        for n, d, a, m, r, s, k, z, q, f in _SEED
    ])

    op.create_table(
        "usage_tracking",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("emails_received", sa.BigInteger(), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("api_calls", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "period", name="uq_usage_org_period"),
        **_MYSQL,
    )

    op.create_table(
        "organization_domains",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain"),
        **_MYSQL,
    )
    with op.batch_alter_table("organization_domains", schema=None) as batch_op:
        batch_op.create_index("ix_organization_domains_organization_id", ["organization_id"], unique=False)

    op.create_table(
        "message_tags",
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", "tag"),
        **_MYSQL,
    )
    with op.batch_alter_table("message_tags", schema=None) as batch_op:
        batch_op.create_index("ix_tags_org_tag_message", ["organization_id", "tag", "message_id"], unique=False)

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("message_count", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("suspended_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("suspended_reason", sa.String(length=200), nullable=True))

    with op.batch_alter_table("email_addresses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="exact"))
        batch_op.add_column(sa.Column("domain", sa.String(length=255), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("description", sa.String(length=200), nullable=False, server_default=""))
        batch_op.create_index("ix_email_addresses_domain", ["domain"], unique=False)

    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address_id", _ID, nullable=True))
        batch_op.create_index("ix_recipients_org_address_id", ["organization_id", "address_id", "message_id"],
                              unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_org_message_id", ["organization_id", "message_id"], unique=False,
                              mysql_length={"message_id": 255})

    # Totals for what is already stored, so quotas start from the truth.
    op.execute(
        "UPDATE organizations SET "
        "storage_bytes = COALESCE((SELECT SUM(size) FROM messages WHERE messages.organization_id = organizations.id), 0), "
        "message_count = (SELECT COUNT(*) FROM messages WHERE messages.organization_id = organizations.id)"
    )
    op.execute("UPDATE email_addresses SET domain = SUBSTR(address, INSTR(address, '@') + 1)")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_org_message_id")
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_recipients_org_address_id")
        batch_op.drop_column("address_id")
    with op.batch_alter_table("email_addresses", schema=None) as batch_op:
        batch_op.drop_index("ix_email_addresses_domain")
        batch_op.drop_column("description")
        batch_op.drop_column("domain")
        batch_op.drop_column("kind")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("suspended_reason")
        batch_op.drop_column("suspended_at")
        batch_op.drop_column("message_count")
        batch_op.drop_column("storage_bytes")
    op.drop_table("message_tags")
    op.drop_table("organization_domains")
    op.drop_table("usage_tracking")
    op.drop_table("tier_limits")
