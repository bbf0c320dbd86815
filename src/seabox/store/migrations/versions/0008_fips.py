"""Floating IPs: an address from the public range, held by a tenant, optionally named and attached to a container."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "fips",
        sa.Column("address", sa.String(15), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=True),
        sa.Column("container_id", sa.String(64), sa.ForeignKey("containers.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_fip_name"),
        sa.UniqueConstraint("container_id", name="uq_fip_container"),
    )
    op.create_index("ix_fips_tenant_id", "fips", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("fips")
