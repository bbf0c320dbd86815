"""Functions and their calls (results kept until read once or expired)."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("generation", BigInt, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_function_name"),
    )
    op.create_table(
        "function_calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("function_id", sa.String(32), sa.ForeignKey("functions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("sync", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_size", sa.Integer, nullable=False),
        sa.Column("result_status", sa.Integer, nullable=True),
        sa.Column("result_body", sa.LargeBinary, nullable=True),
        sa.Column("result_headers", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("container", sa.String(64), nullable=True),
        sa.Column("log_tail", sa.Text, nullable=True),
        sa.Column("server", sa.String(128), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("read_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_function_calls_function_id", "function_calls", ["function_id"])
    op.create_index("ix_function_calls_tenant_id", "function_calls", ["tenant_id"])
    op.create_index("ix_function_calls_expires_at", "function_calls", ["expires_at"])


def downgrade() -> None:
    op.drop_table("function_calls")
    op.drop_table("functions")
