"""64-bit volume sizes and event ids, unbounded event resource names (PostgreSQL enforces what SQLite ignores)."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: INTEGER is 64-bit and VARCHAR lengths are not enforced
    op.alter_column("volumes", "size", type_=sa.BigInteger, existing_nullable=False)
    op.alter_column("events", "id", type_=sa.BigInteger, existing_nullable=False)
    op.execute("ALTER SEQUENCE events_id_seq AS bigint")
    op.alter_column("events", "resource_name", type_=sa.Text, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("events", "resource_name", type_=sa.String(512), existing_nullable=False)
    op.execute("ALTER SEQUENCE events_id_seq AS integer")
    op.alter_column("events", "id", type_=sa.Integer, existing_nullable=False)
    op.alter_column("volumes", "size", type_=sa.Integer, existing_nullable=False)
