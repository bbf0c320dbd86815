"""Node records and join tokens: registration, heartbeats, cordon/drain, and one-use join tokens."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.errors import Conflict, NotFound, Unauthorized
from seabox.model.node import Node, NodeCapacity, Schedule
from seabox.store import tables as t
from seabox.store.repo import _ts, hash_key

JOIN_TOKEN_PREFIX = "sbxj_"
NODE_CREDENTIAL_PREFIX = "sbxn_"


class NodeStore:
    """Typed access to the nodes and join_tokens tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # join tokens ---------------------------------------------------------------
    def issue_join_token(self, ttl: float) -> str:
        """A token one node may join with within TTL seconds (shown once, stored hashed)."""
        token = JOIN_TOKEN_PREFIX + secrets.token_urlsafe(24)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(t.join_tokens).values(token_hash=hash_key(token), created_at=now, expires_at=now + ttl))
        return token

    def register(self, token: str, name: str, address: str, capacity: NodeCapacity, link_secret: str) -> str:
        """Join node NAME with TOKEN (used up by it); returns the node's own credential (shown once)."""
        credential = NODE_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        jt = t.join_tokens.c
        with self.engine.begin() as conn:
            row = conn.execute(select(t.join_tokens).where(jt.token_hash == hash_key(token)).with_for_update()).first()
            if row is None:
                raise Unauthorized("unknown join token: make one with `seabox admin node token`")
            if row.used_by is not None:
                raise Unauthorized(f"join token already used (by node {row.used_by}): make a new one")
            if row.expires_at < now:
                raise Unauthorized("join token expired: make a new one with `seabox admin node token`")
            if conn.execute(select(t.nodes.c.name).where(t.nodes.c.name == name)).first():
                raise Conflict(f"a node named {name} is already registered: pick another --name", field="name")
            conn.execute(update(t.join_tokens).where(jt.token_hash == row.token_hash).values(used_by=name))
            try:
                conn.execute(
                    insert(t.nodes).values(
                        name=name, address=address, credential_hash=hash_key(credential), link_secret=link_secret,
                        memory_bytes=capacity.memory_bytes, cpus=capacity.cpus, schedule="ready",
                        registered_at=now, heartbeat_at=now,
                    )
                )
            except IntegrityError:
                raise Conflict(f"a node named {name} is already registered: pick another --name", field="name") from None
        return credential

    def ensure_local(self, name: str, address: str, capacity: NodeCapacity) -> None:
        """Record the embedded server's own node (no credential: it is reached in process)."""
        now = time.time()
        with self.engine.begin() as conn:
            found = conn.execute(select(t.nodes.c.name).where(t.nodes.c.name == name)).first()
            values = {"address": address, "memory_bytes": capacity.memory_bytes, "cpus": capacity.cpus,
                      "heartbeat_at": now}
            if found:
                conn.execute(update(t.nodes).where(t.nodes.c.name == name).values(**values))
            else:
                conn.execute(insert(t.nodes).values(name=name, credential_hash=None, schedule="ready",
                                                    registered_at=now, **values))

    def link_secret(self, name: str) -> str | None:
        """The secret servers present to node NAME's link listener (None for the embedded node)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.nodes.c.link_secret).where(t.nodes.c.name == name)).first()
        return row[0] if row else None

    def node_for_credential(self, credential: str) -> Node | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.nodes).where(t.nodes.c.credential_hash == hash_key(credential))).mappings().first()
        return _node(row) if row else None

    # records -------------------------------------------------------------------
    def heartbeat(self, name: str, capacity: NodeCapacity) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.nodes).where(t.nodes.c.name == name).values(
                    heartbeat_at=time.time(), memory_bytes=capacity.memory_bytes, cpus=capacity.cpus
                )
            )
        if not done.rowcount:
            raise NotFound(f"no such node: {name}")

    def get(self, name: str) -> Node:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.nodes).where(t.nodes.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no such node: {name} (see `seabox admin node ls`)", field="node")
        return _node(row)

    def list(self) -> list[Node]:
        with self.engine.connect() as conn:
            return [_node(r) for r in conn.execute(select(t.nodes).order_by(t.nodes.c.name)).mappings()]

    def set_schedule(self, name: str, schedule: Schedule) -> Node:
        with self.engine.begin() as conn:
            done = conn.execute(update(t.nodes).where(t.nodes.c.name == name).values(schedule=schedule))
        if not done.rowcount:
            raise NotFound(f"no such node: {name} (see `seabox admin node ls`)", field="node")
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.nodes).where(t.nodes.c.name == name))


def _node(row: Any) -> Node:
    return Node(
        name=row["name"],
        address=row["address"],
        memory_bytes=row["memory_bytes"],
        cpus=row["cpus"],
        schedule=row["schedule"],
        registered_at=_ts(row["registered_at"]),
        heartbeat_at=_ts(row["heartbeat_at"]),
    )
