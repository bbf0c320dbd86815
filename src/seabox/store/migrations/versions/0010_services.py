"""Load-balanced services, their replica containers, and floating IPs attached to a service."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("vip", sa.String(15), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("status", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_service_name"),
        sa.UniqueConstraint("tenant_id", "vip", name="uq_service_vip"),
    )
    op.create_index("ix_services_tenant_id", "services", ["tenant_id"])
    op.create_table(
        "service_replicas",
        sa.Column("container_id", sa.String(64), sa.ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("service_id", sa.String(32), sa.ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
        sa.Column("generation", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("draining_since", sa.Float, nullable=True),
    )
    op.create_index("ix_service_replicas_service_id", "service_replicas", ["service_id"])
    with op.batch_alter_table("fips") as batch:
        batch.add_column(sa.Column("service_id", sa.String(32), nullable=True))
        batch.create_foreign_key("fk_fips_service", "services", ["service_id"], ["id"], ondelete="SET NULL")
        batch.create_unique_constraint("uq_fip_service", ["service_id"])


def downgrade() -> None:
    with op.batch_alter_table("fips") as batch:
        batch.drop_constraint("uq_fip_service", type_="unique")
        batch.drop_constraint("fk_fips_service", type_="foreignkey")
        batch.drop_column("service_id")
    op.drop_table("service_replicas")
    op.drop_table("services")
