"""Reserved for the functions tables (filled in by the functions work)."""

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
