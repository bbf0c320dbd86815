"""Each service's SNAT address: the source of its FIP's connections to replicas on other nodes."""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("snat_ip", sa.String(15), nullable=True))
        batch.create_unique_constraint("uq_service_snat_ip", ["tenant_id", "snat_ip"])


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint("uq_service_snat_ip", type_="unique")
        batch.drop_column("snat_ip")
