"""Reserved for the crons tables (filled in by the crons work)."""

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
