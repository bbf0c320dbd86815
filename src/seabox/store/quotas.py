"""Quota checking, in one place: each tenant's limits (the operator's overrides), its use, and the hold that counts.

A write that adds to a quota calls hold() first in its own transaction: it locks the tenant's row
(PostgreSQL: SELECT ... FOR UPDATE; SQLite: its one writer), counts, and refuses past the limit, so
requests at once, on one server or many, take turns and never pass it together; a refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Engine, Table, delete, func, select
from sqlalchemy.sql import Select

from seabox.errors import InvalidArgument, QuotaExceeded
from seabox.model.quota import CONTAINER_QUOTAS, QUOTA_KEYS, Quota, QuotaUse
from seabox.store import tables as t
from seabox.store.dialect import lock_row, upsert

_q = t.tenant_quotas.c


def _rows_of(table: Table) -> Select[tuple[int]]:
    return select(func.count()).select_from(table)


def _counting(key: str, tenant_id: str) -> Select[tuple[int]]:
    """The query counting the tenant's use of quota KEY."""
    if key in CONTAINER_QUOTAS:
        c = t.containers.c
        return _rows_of(t.containers).where(c.tenant_id == tenant_id, c.quota_key == key)
    if key == "images":
        return select(func.count(func.distinct(t.images.c.image_id))).where(t.images.c.tenant_id == tenant_id)
    table = {"fips": t.fips, "services": t.services, "volumes": t.volumes, "security_groups": t.security_groups,
             "crons": t.crons, "functions": t.functions}[key]
    return _rows_of(table).where(table.c.tenant_id == tenant_id)


def used(conn: Connection, tenant_id: str, key: str) -> int:
    return int(conn.execute(_counting(key, tenant_id)).scalar_one())


def limit(conn: Connection, tenant_id: str, quota: Quota) -> int:
    """The tenant's limit of QUOTA: the operator's override for it, else the default."""
    value = conn.execute(select(_q.value).where(_q.tenant_id == tenant_id, _q.key == quota.key)).scalar()
    return quota.default if value is None else int(value)


def _refuse(quota: Quota, limit_: int, in_use: int) -> QuotaExceeded:
    return QuotaExceeded(quota.key, limit_, in_use, QUOTA_KEYS[quota.key][1])


def hold(conn: Connection, tenant_id: str, quota: Quota, adding: int = 1) -> None:
    """Lock the tenant's row until CONN's transaction ends, and refuse (403) unless ADDING more fit QUOTA.

    Call it before anything else the transaction writes or reads: what it counts stays true until the commit.
    """
    lock_row(conn, t.tenants, t.tenants.c.id == tenant_id)
    check(conn, tenant_id, quota, adding)


def check(conn: Connection, tenant_id: str, quota: Quota, adding: int = 1) -> None:
    """Refuse (403) unless ADDING more fit the tenant's QUOTA now (hold() makes it last until the commit)."""
    in_use = used(conn, tenant_id, quota.key)
    limit_ = limit(conn, tenant_id, quota)
    if in_use + adding > limit_:
        raise _refuse(quota, limit_, in_use)


def hold_image(conn: Connection, tenant_id: str, quota: Quota, ref: str, image_id: str) -> None:
    """Like hold(), for pointing the tenant's name REF at IMAGE_ID: refused only if that adds an image past QUOTA."""
    lock_row(conn, t.tenants, t.tenants.c.id == tenant_id)
    i = t.images.c
    held = {r[0] for r in conn.execute(select(i.image_id).where(i.tenant_id == tenant_id).distinct())}
    others = {r[0] for r in conn.execute(select(i.image_id).where(i.tenant_id == tenant_id, i.ref != ref).distinct())}
    after = others | {image_id}
    limit_ = limit(conn, tenant_id, quota)
    if len(after) > len(held) and len(after) > limit_:
        raise _refuse(quota, limit_, len(held))


class QuotaStore:
    """Typed access to the tenant_quotas table and to each tenant's use of its quotas."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def usage(self, tenant_id: str, defaults: Mapping[str, int]) -> list[QuotaUse]:
        """Every quota of the tenant (DEFAULTS: the operator's) with its limit and use, in QUOTA_KEYS order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_q.key, _q.value).where(_q.tenant_id == tenant_id))
            overrides = {key: value for key, value in rows}
            return [
                QuotaUse(key=key, limit=overrides.get(key, defaults[key]), used=used(conn, tenant_id, key),
                         default=key not in overrides, counts=counts)
                for key, (counts, _) in QUOTA_KEYS.items()
            ]

    def check(self, tenant_id: str, quota: Quota, adding: int = 1) -> None:
        """Refuse (403) now, before slow work, what the hold in the writing transaction would refuse."""
        with self.engine.connect() as conn:
            check(conn, tenant_id, quota, adding)

    def set(self, tenant_id: str, values: Mapping[str, int | None]) -> None:
        """Set the tenant's limits VALUES (None: back to the operator's default), all in one transaction."""
        unknown = [key for key in values if key not in QUOTA_KEYS]
        if unknown:
            raise InvalidArgument(f"unknown quota {unknown[0]!r}", field=unknown[0])
        with self.engine.begin() as conn:
            for key, value in values.items():
                if value is None:
                    conn.execute(delete(t.tenant_quotas).where(_q.tenant_id == tenant_id, _q.key == key))
                    continue
                stmt = upsert(conn, t.tenant_quotas).values(tenant_id=tenant_id, key=key, value=value)
                conn.execute(stmt.on_conflict_do_update(index_elements=[_q.tenant_id, _q.key],
                                                        set_={"value": stmt.excluded.value}))
