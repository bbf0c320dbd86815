"""Cron records and their run history: create, suspend, claim due firings exactly once, record how runs end.

A firing is claimed by moving the cron's last_fired forward with a compare-and-set in the same
transaction that inserts its run rows; (cron, scheduled_at) is unique besides, so two servers that
both see a firing due record it once: the second one's transaction changes nothing and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.errors import Conflict, NotFound
from seabox.model.cron import Cron, CronRun, CronSpec
from seabox.model.quota import Quota
from seabox.store import quotas
from seabox.store import tables as t
from seabox.store.leases import Lease, check_fence

KEEP_RUNS = 100  # runs kept per cron, the newest
_c = t.crons.c
_r = t.cron_runs.c


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _run(row: Any) -> CronRun:
    return CronRun(
        id=row["id"], cron=row["cron_name"], scheduled_at=datetime.fromtimestamp(row["scheduled_at"], UTC),
        trigger=row["trigger"], status=row["status"], container=row["container_name"],
        container_id=row["container_id"], started_at=_ts(row["started_at"]), finished_at=_ts(row["finished_at"]),
        exit_code=row["exit_code"], log_tail=row["log_tail"], message=row["message"],
    )


@dataclass(frozen=True)
class CronRecord:
    """A cron as the controller reads it."""

    tenant_id: str
    name: str
    spec: CronSpec
    suspended: bool
    last_fired: float
    next_at: float | None


@dataclass(frozen=True)
class OpenRun:
    """A run whose container is still to be wound up (it runs, or it was replaced or timed out)."""

    tenant_id: str
    run: CronRun
    created_at: float


@dataclass(frozen=True)
class NewRun:
    """A run row a claim inserts."""

    scheduled_at: float
    trigger: str
    status: str
    container_name: str | None = None
    message: str = ""


def _record(row: Any) -> CronRecord:
    return CronRecord(row["tenant_id"], row["name"], CronSpec.model_validate(row["spec"]), row["suspended"],
                      row["last_fired"], row["next_at"])


class CronStore:
    """Typed access to the crons and cron_runs tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # crons --------------------------------------------------------------------------------------
    def create(self, tenant_id: str, name: str, spec: CronSpec, now: float, next_at: float, quota: Quota) -> Cron:
        try:
            with self.engine.begin() as conn:
                quotas.hold(conn, tenant_id, quota)
                conn.execute(insert(t.crons).values(tenant_id=tenant_id, name=name, spec=spec.model_dump(mode="json"),
                                                    suspended=False, last_fired=now, next_at=next_at, created_at=now))
        except IntegrityError:
            raise Conflict(f"cron name {name!r} is already in use", field="name") from None
        return self.get(tenant_id, name)

    def _cron(self, row: Any) -> Cron:
        return Cron(name=row["name"], tenant=row["tenant_id"], spec=CronSpec.model_validate(row["spec"]),
                    suspended=row["suspended"], next_run=_ts(row["next_at"]),
                    last_result=self.last_result(row["tenant_id"], row["name"]),
                    created_at=datetime.fromtimestamp(row["created_at"], UTC))

    def list(self, tenant_id: str) -> list[Cron]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.crons).where(_c.tenant_id == tenant_id).order_by(_c.name)).mappings().all()
        return [self._cron(r) for r in rows]

    def get(self, tenant_id: str, name: str) -> Cron:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.crons).where(_c.tenant_id == tenant_id, _c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no such cron: {name}", field="cron")
        return self._cron(row)

    def record(self, tenant_id: str, name: str) -> CronRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.crons).where(_c.tenant_id == tenant_id, _c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no such cron: {name}", field="cron")
        return _record(row)

    def delete(self, tenant_id: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.cron_runs).where(_r.tenant_id == tenant_id, _r.cron_name == name))
            if not conn.execute(delete(t.crons).where(_c.tenant_id == tenant_id, _c.name == name)).rowcount:
                raise NotFound(f"no such cron: {name}", field="cron")

    def set_suspended(self, tenant_id: str, name: str, suspended: bool, last_fired: float, next_at: float | None) -> None:
        """Suspend (no next firing) or resume (firings count again from LAST_FIRED, the resume time)."""
        values: dict[str, Any] = {"suspended": suspended, "next_at": next_at}
        if not suspended:
            values["last_fired"] = last_fired
        with self.engine.begin() as conn:
            if not conn.execute(update(t.crons).where(_c.tenant_id == tenant_id, _c.name == name).values(**values)).rowcount:
                raise NotFound(f"no such cron: {name}", field="cron")

    def due(self, now: float) -> list[CronRecord]:
        """Every cron, of every tenant, with a firing at or before NOW."""
        with self.engine.connect() as conn:
            q = select(t.crons).where(_c.suspended.is_(False), _c.next_at <= now).order_by(_c.next_at)
            return [_record(r) for r in conn.execute(q).mappings()]

    # firings --------------------------------------------------------------------------------------
    def claim(self, cron: CronRecord, last_fired: float, next_at: float, runs: list[NewRun],
              replaced: list[int], lease: Lease | None) -> list[int] | None:
        """Record the firings up to LAST_FIRED as RUNS and mark the REPLACED runs so; the new rows' ids, in
        order, or None if another server recorded them first (nothing is written then)."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                moved = conn.execute(
                    update(t.crons)
                    .where(_c.tenant_id == cron.tenant_id, _c.name == cron.name, _c.last_fired == cron.last_fired,
                           _c.suspended.is_(False))
                    .values(last_fired=last_fired, next_at=next_at)
                ).rowcount
                if not moved:
                    return None
                if replaced:
                    conn.execute(update(t.cron_runs).where(_r.id.in_(replaced), _r.finished_at.is_(None))
                                 .values(status="replaced"))
                ids = [self._insert_run(conn, cron.tenant_id, cron.name, r, now) for r in runs]
                check_fence(conn, lease)
                self._prune(conn, cron.tenant_id, cron.name)
        except IntegrityError:  # another server recorded one of these firings
            return None
        return ids

    def add_run(self, tenant_id: str, name: str, run: NewRun) -> int:
        """A run outside the schedule (`cron run`)."""
        try:
            with self.engine.begin() as conn:
                run_id = self._insert_run(conn, tenant_id, name, run, time.time())
                self._prune(conn, tenant_id, name)
        except IntegrityError:
            raise Conflict(f"cron {name} was fired at this very time already: try again", field="cron") from None
        return run_id

    @staticmethod
    def _insert_run(conn: Any, tenant_id: str, name: str, run: NewRun, now: float) -> int:
        final = run.status != "running"
        row = conn.execute(insert(t.cron_runs).values(
            tenant_id=tenant_id, cron_name=name, scheduled_at=run.scheduled_at, trigger=run.trigger, status=run.status,
            container_name=run.container_name, container_id=None, created_at=now, started_at=None,
            finished_at=now if final else None, exit_code=None, log_tail="", message=run.message,
        ).returning(_r.id)).scalar_one()
        return int(row)

    @staticmethod
    def _prune(conn: Any, tenant_id: str, name: str) -> None:
        """Keep the newest KEEP_RUNS runs of the cron (and every open one)."""
        of_cron = and_(_r.tenant_id == tenant_id, _r.cron_name == name)
        cutoff = conn.execute(select(_r.scheduled_at, _r.id).where(of_cron)
                              .order_by(_r.scheduled_at.desc(), _r.id.desc()).offset(KEEP_RUNS - 1).limit(1)).first()
        if cutoff is None:
            return
        older = (_r.scheduled_at < cutoff[0]) | ((_r.scheduled_at == cutoff[0]) & (_r.id < cutoff[1]))
        conn.execute(delete(t.cron_runs).where(of_cron, older, _r.finished_at.is_not(None)))

    # runs ------------------------------------------------------------------------------------------
    def open_runs(self, tenant_id: str | None = None, name: str | None = None) -> list[OpenRun]:
        """Runs whose container is still to be wound up, oldest first; of one cron if given."""
        q = select(t.cron_runs).where(_r.finished_at.is_(None)).order_by(_r.id)
        if tenant_id is not None:
            q = q.where(_r.tenant_id == tenant_id, _r.cron_name == name)
        with self.engine.connect() as conn:
            return [OpenRun(r["tenant_id"], _run(r), r["created_at"]) for r in conn.execute(q).mappings()]

    def get_run(self, run_id: int) -> CronRun:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.cron_runs).where(_r.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"no such cron run: {run_id}")
        return _run(row)

    def update_run(self, run_id: int, **values: Any) -> None:
        """Set columns of an open run (a finished one stays as it ended)."""
        with self.engine.begin() as conn:
            conn.execute(update(t.cron_runs).where(_r.id == run_id, _r.finished_at.is_(None)).values(**values))

    def finish_run(self, run_id: int, status: str, exit_code: int | None, log_tail: str, message: str = "") -> None:
        values: dict[str, Any] = {"status": status, "exit_code": exit_code, "log_tail": log_tail,
                                  "finished_at": time.time()}
        if message:
            values["message"] = message
        self.update_run(run_id, **values)

    def history(self, tenant_id: str, name: str, tail: int = KEEP_RUNS) -> list[CronRun]:
        """The cron's last TAIL runs, oldest first."""
        q = (select(t.cron_runs).where(_r.tenant_id == tenant_id, _r.cron_name == name)
             .order_by(_r.scheduled_at.desc(), _r.id.desc()).limit(tail))
        with self.engine.connect() as conn:
            return [_run(r) for r in reversed(conn.execute(q).mappings().all())]

    def last_result(self, tenant_id: str, name: str) -> CronRun | None:
        """The cron's latest run that has ended (skipped and missed firings count)."""
        q = (select(t.cron_runs).where(_r.tenant_id == tenant_id, _r.cron_name == name, _r.finished_at.is_not(None))
             .order_by(_r.finished_at.desc(), _r.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else _run(row)
