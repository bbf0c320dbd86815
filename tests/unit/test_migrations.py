"""Alembic migrations build, on SQLite and PostgreSQL alike, exactly the schema tables.py declares, and keep data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, column, create_engine, insert, select, table

from seabox.store import tables as t
from seabox.store.db import MIGRATIONS, database_url, head_revision, migrate, open_engine
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
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without any schema yet, once per engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database(migrated=False)
    yield url
    cluster.drop_database(url)


@pytest.fixture
def empty(empty_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url(empty_url))
    yield engine
    engine.dispose()


def test_servers_starting_at_once_on_a_new_database_migrate_it_once(empty_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    opening = ("import os, sys, time; from seabox.store.db import open_engine; print(flush=True)\n"
               f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
               f"open_engine({empty_url!r})")
    servers = [subprocess.Popen([sys.executable, "-c", opening], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(4)]
    for server in servers:  # all imported: they open the database within a few milliseconds of each other
        assert server.stdout and server.stdout.readline() == b"\n"
    go.touch()
    assert [(p.wait(60), p.stderr.read() if p.stderr else b"") for p in servers] == [(0, b"")] * 4
    engine = open_engine(empty_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    engine.dispose()


def test_the_newest_migration_file_is_the_head_alembic_upgrades_to() -> None:
    assert head_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_opening_a_database_one_revision_behind_upgrades_it(empty_url: str, empty: Engine) -> None:
    behind = ScriptDirectory(str(MIGRATIONS)).get_revision(head_revision()).down_revision
    migrate(empty, str(behind))
    open_engine(empty_url).dispose()
    with empty.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()


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
