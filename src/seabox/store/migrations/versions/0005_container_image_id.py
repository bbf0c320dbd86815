"""containers.image_id: the image a container is made from as a column, so no query reads inside the JSON spec.

PostgreSQL cannot extract from a JSON value holding \\u0000 (a tenant's environment may), and one such
container made every query that looked into specs fail, for every tenant.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

containers = sa.table("containers", sa.column("id", sa.String), sa.column("spec", sa.JSON),
                      sa.column("image_id", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("image_id", sa.String(80), nullable=True))
        batch.create_index("ix_containers_image_id", ["image_id"])
    bind = op.get_bind()
    for cid, spec in bind.execute(sa.select(containers.c.id, containers.c.spec)).all():
        bind.execute(containers.update().where(containers.c.id == cid).values(image_id=spec.get("image_id")))


def downgrade() -> None:
    with op.batch_alter_table("containers") as batch:
        batch.drop_index("ix_containers_image_id")
        batch.drop_column("image_id")
