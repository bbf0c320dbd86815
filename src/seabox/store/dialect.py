"""What differs between the two engines, in one place: ON CONFLICT inserts, the database's clock, ordered writers."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Table, func, select, text
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
