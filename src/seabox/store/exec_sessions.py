"""Docker exec session records: created, claimed by the server that runs the process, ended; bounded per tenant.

A running session carries the server relaying its process and a lease that server renews. A session
whose lease lapsed (its server died or lost the database) is ended by whoever reads it next, with
exit code LOST_EXIT_CODE: no session stays running forever. Times are the database's clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, ColumnElement, Engine, delete, insert, select, update

from seabox.errors import Conflict, NotFound
from seabox.model.exec import LOST_EXIT_CODE, ExecConfig, ExecSession
from seabox.store import tables as t
from seabox.store.dialect import now

MAX_KEPT = 1000  # sessions not running kept per tenant; the oldest go first
_c = t.exec_sessions.c


def _session(row: Any) -> ExecSession:
    size = (row["height"], row["width"]) if row["height"] and row["width"] else None
    return ExecSession(
        id=row["id"],
        tenant_id=row["tenant_id"],
        container_id=row["container_id"],
        config=ExecConfig(**row["config"]),
        state=row["state"],
        exit_code=row["exit_code"],
        server=row["server"],
        size=size,
    )


def _end_lapsed(conn: Connection, *where: ColumnElement[bool]) -> None:
    conn.execute(
        update(t.exec_sessions)
        .where(_c.state == "running", _c.lease_until <= now(conn), *where)
        .values(state="exited", exit_code=LOST_EXIT_CODE, lease_until=None)
    )


class ExecSessions:
    """Typed access to the exec_sessions table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: str, container_id: str, config: ExecConfig, keep: int = MAX_KEPT) -> ExecSession:
        """A new session; the tenant's oldest sessions that are not running go beyond KEEP."""
        sid = secrets.token_hex(32)
        with self.engine.begin() as conn:
            _end_lapsed(conn, _c.tenant_id == tenant_id)
            conn.execute(
                insert(t.exec_sessions).values(
                    id=sid, tenant_id=tenant_id, container_id=container_id, config=asdict(config), state="created",
                    created_at=time.time(),
                )
            )
            beyond = (
                select(_c.id)
                .where(_c.tenant_id == tenant_id, _c.state != "running")
                .order_by(_c.created_at.desc(), _c.id)
                .offset(keep)
            )
            conn.execute(delete(t.exec_sessions).where(_c.id.in_(beyond.scalar_subquery())))
        return self.get(tenant_id, sid)

    def get(self, tenant_id: str, sid: str) -> ExecSession:
        """The tenant's session SID (NotFound for another tenant's); a lapsed one is ended first."""
        with self.engine.begin() as conn:
            _end_lapsed(conn, _c.id == sid)
            row = conn.execute(
                select(t.exec_sessions).where(_c.id == sid, _c.tenant_id == tenant_id)
            ).mappings().first()
        if row is None:
            raise NotFound(f"no such exec instance: {sid}")
        return _session(row)

    def claim(self, tenant_id: str, sid: str, server: str, ttl: float, size: tuple[int, int] | None) -> ExecSession:
        """Mark the session running on SERVER for TTL seconds (renewed by renew()); Conflict if it was started."""
        values: dict[str, Any] = {"state": "running", "server": server}
        if size is not None:
            values["height"], values["width"] = size
        with self.engine.begin() as conn:
            values["lease_until"] = now(conn) + ttl
            claimed = conn.execute(
                update(t.exec_sessions)
                .where(_c.id == sid, _c.tenant_id == tenant_id, _c.state == "created")
                .values(**values)
            ).rowcount
        session = self.get(tenant_id, sid)
        if not claimed:
            raise Conflict(f"exec {sid[:12]} has already been started")
        return session

    def unclaim(self, sid: str, server: str) -> None:
        """SERVER could not start the process: the session may be started again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.exec_sessions)
                .where(_c.id == sid, _c.server == server, _c.state == "running")
                .values(state="created", server=None, lease_until=None)
            )

    def finish(self, sid: str, server: str, exit_code: int) -> bool:
        """Record the exit of SERVER's running session; False if SERVER no longer held it (it was ended as lost)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(t.exec_sessions)
                    .where(_c.id == sid, _c.server == server, _c.state == "running")
                    .values(state="exited", exit_code=exit_code, lease_until=None)
                ).rowcount
            )

    def renew(self, server: str, sids: Iterable[str], ttl: float) -> set[str]:
        """Extend SERVER's leases on its running sessions SIDS (lapsed ones too, unless ended); the ids it still holds."""
        ids = list(sids)
        if not ids:
            return set()
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(t.exec_sessions)
                .where(_c.id.in_(ids), _c.server == server, _c.state == "running")
                .values(lease_until=now(conn) + ttl)
                .returning(_c.id)
            )
            return {r[0] for r in rows}

    def resize(self, tenant_id: str, sid: str, height: int, width: int) -> ExecSession:
        """Ask for the session's terminal to be HEIGHT x WIDTH (at its start if it has not started yet)."""
        with self.engine.begin() as conn:
            _end_lapsed(conn, _c.id == sid)
            done = conn.execute(
                update(t.exec_sessions)
                .where(_c.id == sid, _c.tenant_id == tenant_id, _c.state != "exited")
                .values(height=height, width=width)
            ).rowcount
        session = self.get(tenant_id, sid)
        if not done:
            raise Conflict(f"exec {sid[:12]} is not running")
        return session

    def end_server(self, server: str) -> None:
        """SERVER stops: its running sessions end as lost at once (their streams end with it)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.exec_sessions)
                .where(_c.server == server, _c.state == "running")
                .values(state="exited", exit_code=LOST_EXIT_CODE, lease_until=None)
            )

    def sizes(self, server: str) -> dict[str, tuple[int, int]]:
        """The terminal sizes asked for SERVER's running sessions that have one."""
        q = select(_c.id, _c.height, _c.width).where(
            _c.server == server, _c.state == "running", _c.height.is_not(None), _c.width.is_not(None)
        )
        with self.engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(q)}
