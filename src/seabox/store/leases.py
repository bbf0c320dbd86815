"""Leases: a named lock with an owner and a time to live, taken atomically on SQLite and PostgreSQL alike.

Several servers on one database use them so that one at a time runs a controller pass: each asks for
the lease every few seconds (acquire renews it for its holder), works only while it holds it, and
uses the generation (which grows whenever the lease changes hands) to fence writes of a holder that
stalled past its time. Times are the database's clock on PostgreSQL, so servers' clocks need not agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, case, select, update

from seabox.errors import Conflict, InvalidArgument
from seabox.store import tables as t
from seabox.store.dialect import now, upsert

MAX_TTL = 86400.0


@dataclass(frozen=True)
class Lease:
    """Who holds a lease, until when (epoch seconds, database clock), and its fencing generation."""

    name: str
    owner: str
    expires_at: float
    generation: int


class LeaseLost(Conflict):
    """A write fenced by a lease its server no longer holds: another server runs that pass now."""


def check_fence(conn: Connection, lease: Lease | None) -> None:
    """Raise LeaseLost (rolling back CONN's transaction) unless LEASE is still held, at its generation.

    Call it after the transaction's writes: they hold SQLite's one write lock, and on PostgreSQL the
    lease row is locked for share until the commit, so the lease cannot change hands in between.
    """
    if lease is None:
        return
    c = t.leases.c
    held = (
        select(c.name)
        .where(c.name == lease.name, c.owner == lease.owner, c.generation == lease.generation, c.expires_at > now(conn))
        .with_for_update(read=True)
    )
    if conn.execute(held).first() is None:
        raise LeaseLost(f"lease {lease.name} (generation {lease.generation}) is no longer held by {lease.owner}")


def _check(name: str, owner: str, ttl: float | None = None) -> None:
    for field, value in (("name", name), ("owner", owner)):
        if not value or len(value) > 128:
            raise InvalidArgument(f"lease {field} must be 1 to 128 characters", field=field)
    if ttl is not None and not (math.isfinite(ttl) and 0 < ttl <= MAX_TTL):
        raise InvalidArgument(f"lease ttl must be more than 0 and at most {MAX_TTL:.0f} seconds", field="ttl")


def _lease(row: Any) -> Lease | None:
    return Lease(row["name"], row["owner"], row["expires_at"], row["generation"]) if row else None


class Leases:
    """Acquire, renew, release and look up named leases in the store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease for TTL seconds if it is free or expired, or extend it if OWNER holds it; None if another does."""
        _check(name, owner, ttl)
        c = t.leases.c
        with self.engine.begin() as conn:
            at = now(conn)
            stmt = upsert(conn, t.leases).values(name=name, owner=owner, expires_at=at + ttl, generation=1)
            mine = c.owner == stmt.excluded.owner
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.name],
                set_={
                    "owner": stmt.excluded.owner,
                    "expires_at": stmt.excluded.expires_at,
                    "generation": c.generation + case((mine, 0), else_=1),
                },
                where=mine | (c.expires_at <= at),
            ).returning(*t.leases.c)
            return _lease(conn.execute(stmt).mappings().first())

    def renew(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Extend OWNER's unexpired lease to TTL seconds from now; None if OWNER no longer holds it."""
        _check(name, owner, ttl)
        c = t.leases.c
        with self.engine.begin() as conn:
            at = now(conn)
            stmt = (
                update(t.leases)
                .where(c.name == name, c.owner == owner, c.expires_at > at)
                .values(expires_at=at + ttl)
                .returning(*t.leases.c)
            )
            return _lease(conn.execute(stmt).mappings().first())

    def release(self, name: str, owner: str) -> bool:
        """Give the lease up at once if OWNER holds it (the generation stays, so the next holder's is higher)."""
        _check(name, owner)
        c = t.leases.c
        with self.engine.begin() as conn:
            at = now(conn)
            stmt = update(t.leases).where(c.name == name, c.owner == owner, c.expires_at > at).values(expires_at=at)
            return bool(conn.execute(stmt).rowcount)

    def holder(self, name: str) -> Lease | None:
        """The unexpired lease NAME, or None if nobody holds it."""
        c = t.leases.c
        with self.engine.connect() as conn:
            row = conn.execute(select(t.leases).where(c.name == name, c.expires_at > now(conn))).mappings().first()
        return _lease(row)
