"""Alembic migrations build, on SQLite and PostgreSQL alike, exactly the schema tables.py declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from seabox.store.db import open_engine
from seabox.store.tables import metadata


def test_the_migrated_schema_matches_the_table_definitions(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    open_engine(db_url).dispose()  # a second server opening the same database finds it at head
    engine.dispose()
