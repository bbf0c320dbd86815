"""Billing: the meter's usage intervals, the price book's versions, issued invoices and spend limits."""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_intervals",
        sa.Column("id", BigInt, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("resource_name", sa.String(255), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("quantity", sa.String(40), nullable=False),
        sa.Column("start_ms", BigInt, nullable=False),
        sa.Column("end_ms", BigInt, nullable=True),
        sa.Column("minimum_ms", BigInt, nullable=False),
        sa.Column("lost", sa.Boolean, nullable=False),
    )
    op.create_index("ix_usage_tenant_end", "usage_intervals", ["tenant_id", "end_ms"])
    op.create_index("ix_usage_resource", "usage_intervals", ["kind", "resource_id"])
    op.create_table(
        "price_books",
        sa.Column("id", BigInt, primary_key=True, autoincrement=True),
        sa.Column("effective_at", sa.Float, nullable=False, unique=True),
        sa.Column("prices", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("total", sa.String(40), nullable=False),
    )
    op.create_table(
        "spend_limits",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("monthly", sa.String(40), nullable=False),
        sa.Column("stop_running", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend_limits")
    op.drop_table("invoices")
    op.drop_table("price_books")
    op.drop_index("ix_usage_resource", "usage_intervals")
    op.drop_index("ix_usage_tenant_end", "usage_intervals")
    op.drop_table("usage_intervals")
