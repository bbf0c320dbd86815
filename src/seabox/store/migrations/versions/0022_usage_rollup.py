"""The day rollup of closed usage intervals: their pieces cut at UTC midnights and each day's sums, filled from the ledger."""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from seabox.billing.tally import cut

revision = "0022"
down_revision = "0021"
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DAY_KEY = ("tenant_id", "day_ms", "kind", "resource_id", "resource_name", "meter", "quantity")


def upgrade() -> None:
    pieces = op.create_table(
        "usage_pieces",
        sa.Column("id", BigInt, primary_key=True, autoincrement=True),
        sa.Column("interval_id", BigInt, nullable=False, index=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("day_ms", BigInt, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("resource_name", sa.String(255), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("quantity", sa.String(40), nullable=False),
        sa.Column("start_ms", BigInt, nullable=False),
        sa.Column("end_ms", BigInt, nullable=False),
    )
    op.create_index("ix_usage_pieces_tenant_day", "usage_pieces", ["tenant_id", "day_ms"])
    days = op.create_table(
        "usage_days",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("day_ms", BigInt, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("resource_id", sa.String(128), primary_key=True),
        sa.Column("resource_name", sa.String(255), primary_key=True),
        sa.Column("meter", sa.String(32), primary_key=True),
        sa.Column("quantity", sa.String(40), primary_key=True),
        sa.Column("billed_ms", BigInt, nullable=False),
    )
    rows = op.get_bind().execute(sa.text(
        "SELECT id, tenant_id, kind, resource_id, resource_name, meter, quantity, start_ms, end_ms, minimum_ms "
        "FROM usage_intervals WHERE end_ms IS NOT NULL AND kind != 'fip'"))
    new_pieces = []
    sums: dict[tuple, int] = defaultdict(int)
    for r in rows:
        for day, a, b in cut(r.start_ms, max(r.end_ms, r.start_ms + r.minimum_ms)):
            piece = {"interval_id": r.id, "tenant_id": r.tenant_id, "day_ms": day, "kind": r.kind,
                     "resource_id": r.resource_id, "resource_name": r.resource_name, "meter": r.meter,
                     "quantity": r.quantity, "start_ms": a, "end_ms": b}
            new_pieces.append(piece)
            sums[tuple(piece[k] for k in DAY_KEY)] += b - a
    if new_pieces:
        op.bulk_insert(pieces, new_pieces)
        op.bulk_insert(days, [dict(zip(DAY_KEY, key)) | {"billed_ms": ms} for key, ms in sums.items()])


def downgrade() -> None:
    op.drop_table("usage_days")
    op.drop_index("ix_usage_pieces_tenant_day", "usage_pieces")
    op.drop_table("usage_pieces")
