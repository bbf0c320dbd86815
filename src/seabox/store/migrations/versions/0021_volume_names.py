"""Volume names up to 255 characters, as Docker allows (SQLite: the table is copied, as batch mode does)."""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0016"


def upgrade() -> None:
    with op.batch_alter_table("volumes") as batch:
        batch.alter_column("name", type_=sa.String(255), existing_type=sa.String(63), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("volumes") as batch:
        batch.alter_column("name", type_=sa.String(63), existing_type=sa.String(255), existing_nullable=False)
