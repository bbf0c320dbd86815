"""Cluster-wide call admission: each call's place in its tenant's line, and each function's last call time.

function_calls.arrival orders a tenant's queued calls across servers (first in, first out);
functions.last_call_at is the idle clock that scale-to-zero reads, whichever server ran the call.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("last_call_at", sa.Float, nullable=True))
    with op.batch_alter_table("function_calls") as batch:
        batch.add_column(sa.Column("arrival", BigInt, nullable=False, server_default="0"))
        batch.create_index("ix_function_calls_tenant_status", ["tenant_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("function_calls") as batch:
        batch.drop_index("ix_function_calls_tenant_status")
        batch.drop_column("arrival")
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("last_call_at")
