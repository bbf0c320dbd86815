"""Per-tenant quotas: the operator's overrides of the defaults, and the quota each container counts against.

Containers made before this count as containers, except those a function made (its label names the
function), which count as function_containers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
FUNCTION_LABEL = "seabox.function"  # on every container of a function's call or replica


def upgrade() -> None:
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("quota_key", sa.String(32), nullable=False, server_default="containers"))
    containers = sa.table("containers", sa.column("id", sa.String), sa.column("spec", sa.JSON),
                          sa.column("quota_key", sa.String))
    conn = op.get_bind()
    made_by_functions = [row.id for row in conn.execute(sa.select(containers.c.id, containers.c.spec))
                         if FUNCTION_LABEL in (row.spec.get("labels") or {})]
    if made_by_functions:
        conn.execute(sa.update(containers).where(containers.c.id.in_(made_by_functions))
                     .values(quota_key="function_containers"))


def downgrade() -> None:
    with op.batch_alter_table("containers") as batch:
        batch.drop_column("quota_key")
    op.drop_table("tenant_quotas")
