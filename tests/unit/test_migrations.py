"""Alembic migrations build, on SQLite and PostgreSQL alike, exactly the schema tables.py declares, and keep data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, column, create_engine, insert, select, table

from seabox.store import tables as t
from seabox.store.db import database_url, migrate, open_engine
from seabox.store.tables import metadata
from tests.fixtures.postgres import ENGINES, Cluster


def test_the_migrated_schema_matches_the_table_definitions(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    open_engine(db_url).dispose()  # a second server opening the same database finds it at head
    engine.dispose()


@pytest.fixture(params=ENGINES)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database without any schema yet, once per engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(migrated=False)
    engine = create_engine(database_url(url))
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        cluster.drop_database(url)


def test_upgrading_fills_the_new_image_id_column_of_existing_containers(empty: Engine) -> None:
    migrate(empty, "0004")
    before = table("containers", *(column(name) for name in ("id", "tenant_id", "name", "spec", "status", "created_at")))
    with empty.begin() as conn:
        conn.execute(insert(t.tenants).values(id="t1", name="acme", idx=1, created_at=0.0))
        conn.execute(insert(before).values(id="c1", tenant_id="t1", name="web", created_at=0.0,
                                           spec=json.dumps({"image_id": "sha256:" + "a" * 64}), status="{}"))
    migrate(empty)
    with empty.connect() as conn:
        assert conn.execute(select(t.containers.c.image_id)).scalar() == "sha256:" + "a" * 64
