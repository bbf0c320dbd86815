"""Per-tenant runtime classes: the tenant's default class and the set it may use."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("default_runtime", sa.String(16), nullable=True))
        batch.add_column(sa.Column("allowed_runtimes", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("allowed_runtimes")
        batch.drop_column("default_runtime")
