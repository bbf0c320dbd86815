"""Reserved for the services tables (filled in by the services work)."""

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
