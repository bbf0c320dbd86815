"""What differs between the two engines, in one place: ON CONFLICT inserts, the database's clock, writer order, row locks."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT into TABLE that takes .on_conflict_do_update / .on_conflict_do_nothing on CONN's engine."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def now(conn: Connection) -> float:
    """Epoch seconds by the database's clock on PostgreSQL (one clock for every server), the host's on SQLite."""
    if conn.dialect.name == "postgresql":
        return float(conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())
    return time.time()


def one_writer_at_a_time(conn: Connection, key: int) -> None:
    """Until CONN's transaction ends, make other transactions that ask with KEY wait (SQLite has one writer anyway).

    PostgreSQL hands out sequence numbers at insert time, not at commit: without this, a reader
    following ids could see id 11 committed, move past it, and never see id 10 committed after.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def lock_row(conn: Connection, table: Table, *where: ColumnElement[bool]) -> None:
    """Until CONN's transaction ends, make other writers that lock TABLE's row WHERE wait.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has one writer at a time, but its transaction begins
    only at the first write (a SELECT alone takes no lock): a write that changes nothing begins it,
    so what this transaction reads next stays true until it commits.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(*table.primary_key.columns).where(*where).with_for_update())
        return
    same = next(c for c in table.columns if not c.primary_key)  # a key would draw foreign-key checks
    conn.execute(update(table).where(*where).values({same.name: same}))


def greatest(conn: Connection, *values: Any) -> Any:
    """The largest of VALUES as a SQL expression: GREATEST on PostgreSQL, SQLite's many-argument max()."""
    return (func.greatest if conn.dialect.name == "postgresql" else func.max)(*values)


def least(conn: Connection, *values: Any) -> Any:
    """The smallest of VALUES as a SQL expression: LEAST on PostgreSQL, SQLite's many-argument min()."""
    return (func.least if conn.dialect.name == "postgresql" else func.min)(*values)
