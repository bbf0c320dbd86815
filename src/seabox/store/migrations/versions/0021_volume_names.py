"""Volume names up to 255 characters, as Docker allows (PostgreSQL enforces the length SQLite ignores)."""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0016"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("volumes", "name", type_=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("volumes", "name", type_=sa.String(63), existing_nullable=False)
