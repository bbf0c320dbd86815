"""Function and function-call records: names unique per tenant, secrets unique overall, admission, results until read.

A public call looks its function up by the SHA-256 of the secret in its URL (an indexed equality on a
hash, so the lookup's time says nothing about how much of a guess was right). Calls carry the name of
the server running them and a lease it renews; one whose lease ran out (its server stopped) is marked
failed by the next prune pass, so a call is never silently lost.

Admission is decided here, for every server on the database at once: a call is recorded queued, with
its place in its tenant's line, or running, and a queued call becomes running, only in a transaction
that holds its tenant's row locked and counts the tenant's calls (and its function's) that run now.
Calls whose lease ran out hold no slot and no place in the line, before the prune pass fails them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.errors import Conflict, NotFound, TooManyRequests
from seabox.model.function import Function, FunctionSpec
from seabox.model.quota import Quota
from seabox.store import quotas
from seabox.store import tables as t
from seabox.store.dialect import lock_row

ACTIVE_CALLS = ("queued", "running")
CALL_STATES = (*ACTIVE_CALLS, "done", "failed", "timed-out")
_f = t.functions.c
_k = t.function_calls.c


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def _function(row: Any) -> Function:
    return Function(id=row["id"], tenant=row["tenant_id"], spec=FunctionSpec.model_validate(row["spec"]),
                    secret=row["secret"], generation=row["generation"], created_at=row["created_at"])


@dataclass
class CallRecord:
    """One stored call: where it is, and (once it ended) what it answered."""

    id: str
    function_id: str
    tenant_id: str
    sync: bool
    status: str
    request_size: int
    created_at: float
    expires_at: float
    result_status: int | None = None
    result_body: bytes | None = None
    result_headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    container: str | None = None
    log_tail: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    read_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status not in ACTIVE_CALLS


@dataclass
class _Line:
    """A tenant's calls holding or waiting for a slot, as read under the tenant's row lock (expired leases left out)."""

    running: Counter[str]  # running calls by function
    queued: list[tuple[str, str, str]]  # (call, function, server) of the queued calls, first come first
    limits: dict[str, int]  # the --concurrency of each function with a call queued
    next_arrival: int  # the place of a call arriving now: after every call of the tenant still active

    @classmethod
    def locked(cls, conn: Connection, tenant_id: str, now: float) -> _Line:
        """Lock the tenant's row (until CONN's transaction ends) and read its line."""
        lock_row(conn, t.tenants, t.tenants.c.id == tenant_id)
        rows = conn.execute(select(_k.id, _k.function_id, _k.server, _k.status, _k.lease_until, _k.arrival).where(
            _k.tenant_id == tenant_id, _k.status.in_(ACTIVE_CALLS)).order_by(_k.arrival, _k.id)).all()
        live = [r for r in rows if r.lease_until >= now]
        queued = [(r.id, r.function_id, r.server) for r in live if r.status == "queued"]
        waiting = {fid for _, fid, _ in queued}
        specs = conn.execute(select(_f.id, _f.spec).where(_f.id.in_(waiting))).all() if waiting else []
        return cls(running=Counter(r.function_id for r in live if r.status == "running"), queued=queued,
                   limits={fid: FunctionSpec.model_validate(spec).concurrency for fid, spec in specs},
                   next_arrival=max((r.arrival for r in rows), default=0) + 1)

    def admitted(self, tenant_limit: int, new: tuple[str, str, str] | None = None) -> list[str]:
        """The queued calls (then NEW, a call arriving now) that may run now, in line order: while the tenant
        has fewer than TENANT_LIMIT running, each whose function is below its concurrency and has no earlier
        call waiting."""
        running = Counter(self.running)
        blocked: set[str] = set()  # functions with an earlier call still waiting: first in first out per function
        out: list[str] = []
        for cid, fid, _ in [*self.queued, *([new] if new else [])]:
            if running.total() >= tenant_limit:
                break
            if fid not in blocked and running[fid] < self.limits[fid]:
                running[fid] += 1
                out.append(cid)
            else:
                blocked.add(fid)
        return out


def _call(row: Any) -> CallRecord:
    return CallRecord(
        id=row["id"], function_id=row["function_id"], tenant_id=row["tenant_id"], sync=bool(row["sync"]),
        status=row["status"], request_size=row["request_size"], created_at=row["created_at"],
        expires_at=row["expires_at"], result_status=row["result_status"], result_body=row["result_body"],
        result_headers=row["result_headers"] or {}, error=row["error"], container=row["container"],
        log_tail=row["log_tail"], started_at=row["started_at"], finished_at=row["finished_at"], read_at=row["read_at"],
    )


def _name_taken(exc: IntegrityError) -> bool:
    return "uq_function_name" in str(exc.orig) or "functions.tenant_id, functions.name" in str(exc.orig)


class FunctionStore:
    """Typed access to the functions and function_calls tables; tenant reads stay within one tenant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # functions --------------------------------------------------------------------------------
    def create(self, tenant_id: str, spec: FunctionSpec, quota: Quota) -> Function:
        secret = new_secret()
        row = {"id": secrets.token_hex(16), "tenant_id": tenant_id, "name": spec.name,
               "spec": spec.model_dump(mode="json"), "secret": secret, "secret_hash": secret_hash(secret),
               "generation": 1, "created_at": time.time()}
        try:
            with self.engine.begin() as conn:
                quotas.hold(conn, tenant_id, quota)
                conn.execute(insert(t.functions).values(**row))
        except IntegrityError as exc:
            if _name_taken(exc):
                raise Conflict(f"function name {spec.name!r} is already in use", field="name") from None
            raise
        return _function(row)

    def list(self, tenant_id: str) -> list[Function]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.functions).where(_f.tenant_id == tenant_id).order_by(_f.name)).mappings().all()
        return [_function(r) for r in rows]

    def get(self, tenant_id: str, name: str) -> Function:
        """The tenant's function NAME (NotFound for another tenant's, as for a missing one)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.functions).where(_f.tenant_id == tenant_id, _f.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no such function: {name}", field="function")
        return _function(row)

    def by_id(self, function_id: str) -> Function | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.functions).where(_f.id == function_id)).mappings().first()
        return None if row is None else _function(row)

    def by_secret(self, secret: str) -> Function | None:
        """The function whose public URL carries SECRET, whoever's it is (None if none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.functions).where(_f.secret_hash == secret_hash(secret))).mappings().first()
        return None if row is None else _function(row)

    def update(self, fn: Function, spec: FunctionSpec, refresh: bool) -> Function:
        """Store SPEC as FN's (a new secret with REFRESH); the generation grows by one."""
        values: dict[str, Any] = {"spec": spec.model_dump(mode="json"), "generation": _f.generation + 1}
        if refresh:
            secret = new_secret()
            values.update(secret=secret, secret_hash=secret_hash(secret))
        with self.engine.begin() as conn:
            conn.execute(update(t.functions).where(_f.id == fn.id).values(**values))
            row = conn.execute(select(t.functions).where(_f.id == fn.id)).mappings().one()
        return _function(row)

    def delete(self, fn: Function) -> None:
        """Remove FN and its stored calls; refused (409) while a call of it is queued or running."""
        with self.engine.begin() as conn:
            active = conn.execute(select(func.count()).select_from(t.function_calls).where(
                _k.function_id == fn.id, _k.status.in_(ACTIVE_CALLS))).scalar_one()
            if active:
                raise Conflict(f"function {fn.spec.name} has {active} call(s) queued or running: wait for them "
                               "to end, then remove it", field="function")
            conn.execute(delete(t.function_calls).where(_k.function_id == fn.id))
            conn.execute(delete(t.functions).where(_f.id == fn.id))

    # calls ------------------------------------------------------------------------------------
    def add_call(self, fn: Function, sync: bool, request_size: int, server: str, lease: float, ttl: float, *,
                 tenant_limit: int, queue_size: int) -> tuple[str, bool]:
        """Record a call of FN run by SERVER: (its id, True) when it may run at once, else (its id, False) with
        the call queued at the end of its tenant's line; a 429 when that line already holds QUEUE_SIZE calls."""
        now = time.time()
        cid = secrets.token_hex(16)
        with self.engine.begin() as conn:
            line = _Line.locked(conn, fn.tenant, now)
            line.limits.setdefault(fn.id, fn.spec.concurrency)
            runs = cid in line.admitted(tenant_limit, (cid, fn.id, server))
            if not runs and len(line.queued) >= queue_size:
                raise TooManyRequests(
                    f"too many calls: {line.running.total()} running and {len(line.queued)} queued for this "
                    f"tenant (at most {tenant_limit} at once, {queue_size} waiting: [functions] tenant_concurrency "
                    "and queue_size); call again later", retry_after=1)
            conn.execute(insert(t.function_calls).values(
                id=cid, function_id=fn.id, tenant_id=fn.tenant, sync=int(sync), status="running" if runs else "queued",
                request_size=request_size, server=server, lease_until=now + lease, created_at=now,
                started_at=now if runs else None, expires_at=now + ttl, arrival=line.next_arrival))
            if runs:
                conn.execute(update(t.functions).where(_f.id == fn.id).values(last_call_at=now))
        return cid, runs

    def start_queued(self, server: str, tenant_id: str, tenant_limit: int) -> list[str]:
        """Start those of SERVER's queued calls of the tenant whose turn came (on any server's count); their ids."""
        now = time.time()
        with self.engine.begin() as conn:
            line = _Line.locked(conn, tenant_id, now)
            servers = {cid: srv for cid, _, srv in line.queued}
            started = [cid for cid in line.admitted(tenant_limit) if servers[cid] == server]
            if started:
                conn.execute(update(t.function_calls).where(_k.id.in_(started), _k.status == "queued")
                             .values(status="running", started_at=now))
                conn.execute(update(t.functions).where(_f.id.in_(select(_k.function_id).where(_k.id.in_(started))))
                             .values(last_call_at=now))
        return started

    def last_calls(self, function_ids: list[str]) -> dict[str, float]:
        """When a call of each of FUNCTION_IDS last started or ended, on any server (now for one with a call
        running); a function never called is left out."""
        now = time.time()
        with self.engine.connect() as conn:
            out = {fid: at for fid, at in conn.execute(select(_f.id, _f.last_call_at).where(
                _f.id.in_(function_ids), _f.last_call_at.is_not(None)))}
            out.update({fid: now for (fid,) in conn.execute(select(_k.function_id).distinct().where(
                _k.function_id.in_(function_ids), _k.status == "running", _k.lease_until >= now))})
        return out

    def call_ended(self, call_id: str, status: str, *, result_status: int, body: bytes | None,
                   headers: dict[str, str], error: str | None, container: str | None, log_tail: str | None,
                   read: bool) -> None:
        """Record how the call ended; READ: its caller has the result already (a sync call), none may read it again."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(update(t.function_calls).where(_k.id == call_id, _k.status.in_(ACTIVE_CALLS)).values(
                status=status, result_status=result_status, result_body=body, result_headers=headers, error=error,
                container=container, log_tail=log_tail, finished_at=now, read_at=now if read else None))
            conn.execute(update(t.functions).where(_f.id == select(_k.function_id).where(_k.id == call_id)
                                                   .scalar_subquery()).values(last_call_at=now))

    def get_call(self, tenant_id: str, call_id: str) -> CallRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.function_calls).where(
                _k.tenant_id == tenant_id, _k.id == call_id, _k.read_at.is_(None))).mappings().first()
        if row is None:
            raise NotFound(f"no such call: {call_id} (a result is kept until it is read once, or it expires)",
                           field="call")
        return _call(row)

    def take_result(self, tenant_id: str, call_id: str) -> bool:
        """Mark the ended call read, so it is not answered again; False if another reader was first."""
        with self.engine.begin() as conn:
            return bool(conn.execute(update(t.function_calls).where(
                _k.tenant_id == tenant_id, _k.id == call_id, _k.read_at.is_(None), _k.status.not_in(ACTIVE_CALLS))
                .values(read_at=time.time(), result_body=None)).rowcount)

    def calls(self, function_id: str, limit: int, after: float = 0.0) -> list[CallRecord]:
        """FUNCTION_ID's calls that ended after AFTER (by end time), the latest LIMIT of them, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.function_calls).where(
                _k.function_id == function_id, _k.finished_at > after)
                .order_by(_k.finished_at.desc()).limit(limit)).mappings().all()
        return [_call(r) for r in reversed(rows)]

    def find_call(self, function_id: str, call_id: str) -> CallRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.function_calls).where(
                _k.function_id == function_id, _k.id == call_id)).mappings().first()
        if row is None:
            raise NotFound(f"no such call of this function: {call_id}", field="call")
        return _call(row)

    def active_counts(self, function_id: str) -> dict[str, int]:
        """How many of the function's calls are queued and running (on every server)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_k.status, func.count()).where(
                _k.function_id == function_id, _k.status.in_(ACTIVE_CALLS)).group_by(_k.status)).all()
        counts = {state: 0 for state in ACTIVE_CALLS}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def unread(self, tenant_id: str) -> int:
        """How many of the tenant's async calls are kept unread (queued, running or with a result waiting)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.function_calls).where(
                _k.tenant_id == tenant_id, _k.sync == 0, _k.read_at.is_(None))).scalar_one())

    def active(self, call_ids: list[str]) -> set[str]:
        """Those of CALL_IDS that are queued or running."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(_k.id).where(_k.id.in_(call_ids), _k.status.in_(ACTIVE_CALLS)))}

    def renew(self, server: str, until: float) -> None:
        """SERVER still runs its queued and running calls: their leases last until UNTIL."""
        with self.engine.begin() as conn:
            conn.execute(update(t.function_calls).where(_k.server == server, _k.status.in_(ACTIVE_CALLS))
                         .values(lease_until=until))

    def prune(self, now: float) -> tuple[int, int]:
        """Fail the calls whose server is gone (lease out) and drop expired or read ones: (failed, dropped)."""
        with self.engine.begin() as conn:
            failed = conn.execute(update(t.function_calls).where(
                _k.status.in_(ACTIVE_CALLS), _k.lease_until < now).values(
                status="failed", result_status=503, finished_at=now,
                error="the server running this call stopped before it ended; call again")).rowcount
            dropped = conn.execute(delete(t.function_calls).where(
                _k.status.not_in(ACTIVE_CALLS), _k.expires_at < now)).rowcount
        return int(failed), int(dropped)
