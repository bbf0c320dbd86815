"""What differs between the two engines, in one place: the INSERT that can say ON CONFLICT, and the database's clock."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT into TABLE that takes .on_conflict_do_update / .on_conflict_do_nothing on CONN's engine."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def now(conn: Connection) -> float:
    """Epoch seconds by the database's clock on PostgreSQL (one clock for every server), the host's on SQLite."""
    if conn.dialect.name == "postgresql":
        return float(conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())
    return time.time()
