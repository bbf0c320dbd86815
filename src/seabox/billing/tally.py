"""The day rollup of closed usage intervals: each one's billed span cut into pieces at UTC midnights, and per-day sums, kept in step with its end."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from seabox.store import tables as t
from seabox.store.dialect import upsert

DAY_MS = 86_400_000
U = t.usage_intervals.c
P = t.usage_pieces.c
D = t.usage_days.c
DAY_KEY = ("tenant_id", "day_ms", "kind", "resource_id", "resource_name", "meter", "quantity")
INTERVAL_COLUMNS = (U.id, U.tenant_id, U.kind, U.resource_id, U.resource_name, U.meter, U.quantity, U.start_ms,
                    U.end_ms, U.minimum_ms)


def day_of(at_ms: int) -> int:
    """The UTC midnight that begins AT_MS's day."""
    return at_ms - at_ms % DAY_MS


def cut(start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
    """(day, start, end) pieces of [START_MS, END_MS), cut at every UTC midnight inside it."""
    pieces = []
    while start_ms < end_ms:
        day = day_of(start_ms)
        piece_end = min(end_ms, day + DAY_MS)
        pieces.append((day, start_ms, piece_end))
        start_ms = piece_end
    return pieces


def _pieces(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """The pieces of closed interval ROWS' billed spans (the minimum applied); FIPs bill by month and have none."""
    out = []
    for r in rows:
        if r.end_ms is None or r.kind == "fip":
            continue
        for day, a, b in cut(r.start_ms, max(r.end_ms, r.start_ms + r.minimum_ms)):
            out.append({"interval_id": r.id, "tenant_id": r.tenant_id, "day_ms": day, "kind": r.kind,
                        "resource_id": r.resource_id, "resource_name": r.resource_name, "meter": r.meter,
                        "quantity": r.quantity, "start_ms": a, "end_ms": b})
    return out


def _add_to_days(conn: Connection, pieces: Sequence[Any], sign: int) -> None:
    """Add (SIGN 1) or take away (-1) PIECES' billed ms to or from their days' sums."""
    sums: dict[tuple[Any, ...], int] = defaultdict(int)
    for p in pieces:
        get = p.get if isinstance(p, dict) else p._mapping.get
        sums[tuple(get(k) for k in DAY_KEY)] += sign * (get("end_ms") - get("start_ms"))
    if not sums:
        return
    stmt = upsert(conn, t.usage_days)
    stmt = stmt.on_conflict_do_update(index_elements=list(DAY_KEY),
                                      set_={"billed_ms": D.billed_ms + stmt.excluded.billed_ms})
    conn.execute(stmt, [dict(zip(DAY_KEY, key)) | {"billed_ms": ms} for key, ms in sums.items()])


def tally(conn: Connection, rows: Sequence[Any]) -> None:
    """Add closed interval ROWS (not tallied yet) to the rollup."""
    pieces = _pieces(rows)
    if pieces:
        conn.execute(insert(t.usage_pieces), pieces)
        _add_to_days(conn, pieces, 1)


def retally(conn: Connection, interval_id: int) -> None:
    """Bring the rollup in step with interval INTERVAL_ID after its end was set, moved or cleared."""
    old = conn.execute(select(t.usage_pieces).where(P.interval_id == interval_id)).all()
    if old:
        _add_to_days(conn, old, -1)
        conn.execute(delete(t.usage_pieces).where(P.interval_id == interval_id))
    tally(conn, conn.execute(select(*INTERVAL_COLUMNS).where(U.id == interval_id)).all())
