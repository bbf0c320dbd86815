"""Crons and the history of their runs."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "crons",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.Column("last_fired", sa.Float, nullable=False),
        sa.Column("next_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_crons_next_at", "crons", ["next_at"])
    op.create_table(
        "cron_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("cron_name", sa.String(63), nullable=False),
        sa.Column("scheduled_at", sa.Float, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("container_name", sa.String(63), nullable=True),
        sa.Column("container_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("log_tail", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "cron_name"], ["crons.tenant_id", "crons.name"], ondelete="CASCADE",
                                name="fk_cron_runs_cron"),
        sa.UniqueConstraint("tenant_id", "cron_name", "scheduled_at", name="uq_cron_run_time"),
    )
    op.create_index("ix_cron_runs_open", "cron_runs", ["finished_at"])


def downgrade() -> None:
    op.drop_table("cron_runs")
    op.drop_table("crons")
