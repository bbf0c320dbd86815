"""The meter: opens and closes the ledger's usage intervals inside the transaction of each billable change."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import Connection, insert, select, update

from seabox.billing.tally import retally
from seabox.model.event import ContainerEvent
from seabox.model.sizes import GiB, get_size
from seabox.store import tables as t

CONTAINER_MINIMUM_S = 10  # each start of a container bills at least this many seconds
U = t.usage_intervals.c


def ms(at: float) -> int:
    """Epoch seconds as the ledger's integer milliseconds."""
    return round(at * 1000)


def gigabytes(size_bytes: int) -> Decimal:
    """A size in the storage meter's unit (GiB, exactly)."""
    return Decimal(size_bytes) / GiB


def open_interval(conn: Connection, tenant_id: str, kind: str, resource_id: str, name: str, meter: str,
                  at: float, quantity: Decimal = Decimal(1), minimum_s: float = 0) -> None:
    conn.execute(insert(t.usage_intervals).values(
        tenant_id=tenant_id, kind=kind, resource_id=resource_id, resource_name=name[:255], meter=meter,
        quantity=str(quantity), start_ms=ms(at), end_ms=None, minimum_ms=round(minimum_s * 1000), lost=False,
    ))


def close_interval(conn: Connection, kind: str, resource_id: str, at: float, lost: bool = False) -> None:
    """End RESOURCE_ID's open interval of KIND at AT (never before it began); nothing if none is open."""
    for row in conn.execute(select(U.id, U.start_ms).where(U.kind == kind, U.resource_id == resource_id,
                                                            U.end_ms.is_(None))):
        conn.execute(update(t.usage_intervals).where(U.id == row.id)
                     .values(end_ms=max(row.start_ms, ms(at)), lost=lost))
        retally(conn, row.id)


def resize_run(conn: Connection, tenant_id: str, cid: str, name: str, size: str, at: float) -> None:
    """End the container's open run at AT and open one at SIZE from AT (nothing if none is open).

    The start's minimum is shared between the two: the first bills exactly its part, the second what is
    left of the minimum, so a run bills at least CONTAINER_MINIMUM_S in all, however often it is resized.
    """
    row = conn.execute(select(U.id, U.start_ms, U.minimum_ms).where(
        U.kind == "container", U.resource_id == cid, U.end_ms.is_(None))).first()
    if row is None:
        return
    end = max(row.start_ms, ms(at))
    elapsed = end - row.start_ms
    conn.execute(update(t.usage_intervals).where(U.id == row.id)
                 .values(end_ms=end, minimum_ms=min(row.minimum_ms, elapsed)))
    retally(conn, row.id)
    open_interval(conn, tenant_id, "container", cid, name, f"container.{get_size(size).name}", end / 1000,
                  minimum_s=max(0, row.minimum_ms - elapsed) / 1000)


def _last_lost(conn: Connection, resource_id: str) -> tuple[int, int] | None:
    """(id, start_ms) of the container's latest interval if its node was lost while it ran, and nothing is open."""
    row = conn.execute(select(U.id, U.start_ms, U.end_ms, U.lost).where(U.kind == "container", U.resource_id == resource_id)
                       .order_by(U.id.desc()).limit(1)).first()
    if row is None or row.end_ms is None or not row.lost:
        return None
    return row.id, row.start_ms


def container_change(conn: Connection, tenant_id: str, cid: str, name: str, events: Iterable[ContainerEvent],
                     now: float, state: str | None = None) -> None:
    """Fold a container's lifecycle EVENTS (and its new STATE, if its status changed) into its run intervals.

    start opens a run billed by its size (at least CONTAINER_MINIMUM_S); die, destroy and move (to
    another node, where it starts again) close it; update with a size (a live resize) closes it and
    opens one at the new size (see resize_run);
    lost closes it at its node's last heartbeat, provisionally: when the node reports again, an exit
    time it reports moves the end there, and a container still running reopens the interval, so a
    container is billed for the time it really ran.
    """
    for e in events:
        at = e.at if e.at is not None else now
        if e.action == "start":
            close_interval(conn, "container", cid, at)
            size = e.attributes.get("size", "")
            open_interval(conn, tenant_id, "container", cid, name, f"container.{get_size(size).name}", at,
                          minimum_s=CONTAINER_MINIMUM_S)
        elif e.action == "update" and "size" in e.attributes:
            resize_run(conn, tenant_id, cid, name, e.attributes["size"], at)
        elif e.action == "lost":
            close_interval(conn, "container", cid, at, lost=True)
        elif e.action == "die" and (lost := _last_lost(conn, cid)) is not None:
            interval, start_ms = lost
            conn.execute(update(t.usage_intervals).where(U.id == interval)
                         .values(end_ms=max(start_ms, ms(at)), lost=False))
            retally(conn, interval)
        elif e.action in ("die", "destroy", "move"):
            close_interval(conn, "container", cid, at)
    if state == "running" and (lost := _last_lost(conn, cid)) is not None:
        conn.execute(update(t.usage_intervals).where(U.id == lost[0]).values(end_ms=None, lost=False))
        retally(conn, lost[0])
