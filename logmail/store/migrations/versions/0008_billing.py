"""billing: each organisation's Stripe subscription, and the Stripe events received

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "organization_billing",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("subscription_status", sa.String(length=32), nullable=True),
        sa.Column("price_id", sa.String(length=255), nullable=True),
        sa.Column("current_period_end", sa.BigInteger(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("pending_tier", sa.String(length=64), nullable=True),
        sa.Column("pending_tier_at", sa.BigInteger(), nullable=True),
        sa.Column("last_event_id", sa.String(length=255), nullable=True),
        sa.Column("last_event_created", sa.BigInteger(), nullable=False),
        sa.Column("last_event_rank", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id"),
        **_MYSQL,
    )
    with op.batch_alter_table("organization_billing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organization_billing_stripe_customer_id"), ["stripe_customer_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_organization_billing_stripe_subscription_id"),
                              ["stripe_subscription_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_organization_billing_pending_tier_at"), ["pending_tier_at"],
                              unique=False)

    op.create_table(
        "billing_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("stripe_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", _ID, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("processed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_event_id"),
        **_MYSQL,
    )
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.create_index("ix_billing_events_org_processed", ["organization_id", "processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_events_org_processed")
    op.drop_table("billing_events")
    with op.batch_alter_table("organization_billing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_billing_pending_tier_at"))
        batch_op.drop_index(batch_op.f("ix_organization_billing_stripe_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_organization_billing_stripe_customer_id"))
    op.drop_table("organization_billing")
