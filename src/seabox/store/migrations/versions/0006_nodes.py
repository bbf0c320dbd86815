"""Nodes: the hosts that run containers (capacity, schedulability, heartbeats), and join tokens."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("credential_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("link_secret", sa.String(128), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("schedule", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_table(
        "join_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_by", sa.String(63), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("join_tokens")
    op.drop_table("nodes")
