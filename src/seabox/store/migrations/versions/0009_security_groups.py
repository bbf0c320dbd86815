"""Security groups and their member containers."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "security_groups",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("generation", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "security_group_members",
        sa.Column("container_id", sa.String(64), sa.ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_name", sa.String(63), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "group_name"], ["security_groups.tenant_id", "security_groups.name"],
                                name="fk_security_group_members_group"),
    )
    op.create_index("ix_security_group_members_group", "security_group_members", ["tenant_id", "group_name"])


def downgrade() -> None:
    op.drop_table("security_group_members")
    op.drop_table("security_groups")
