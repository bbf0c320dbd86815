"""Rating: what the ledger's intervals cost over a window under the price book's versions, exactly, in Decimal.

Each interval bills the span from its start to its end (to now while open), at least its minimum (a
container run shorter than 10 s is billed as though it ran 10 s); the database sums those spans over
each segment of the window between price changes (store.billing.sums), so each part is priced by the
version in force then; a FIP bills one month for each calendar
month (UTC) it was held in, priced and counted at the first instant of that month it was held.
Quantities are in each price's unit; a line's cost is the exact sum rounded half-even to
MONEY_PLACES places, and a total is the sum of its rounded lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from seabox.billing.prices import SECONDS_PER_MONTH, UNITS, PriceHistory

MONEY_PLACES = 6  # dollars to the millionth: a 10 s run of an s1 costs $0.000004
MONEY = Decimal(1).scaleb(-MONEY_PLACES)
QUANTITY = Decimal("0.000001")
GROUPS = ("size", "resource", "container", "day")  # what `usage --by` groups lines by
DAY_MS = 86_400_000
# (lo, hi) -> (key, resource id, meter, quantity, billed milliseconds in [lo, hi)) of every per-time meter
# (store.billing.sums; the resource id only when grouped by container)
Sums = Callable[[int, int], Iterable[tuple[str, str, str, Decimal, int]]]


@dataclass(frozen=True)
class Interval:
    """One span of the ledger (billing.meter writes them)."""

    kind: str  # container | rootfs | volume | fip | service
    resource_id: str
    resource_name: str
    meter: str
    quantity: Decimal
    start_ms: int
    end_ms: int | None  # None: open
    minimum_ms: int = 0


@dataclass(frozen=True)
class Line:
    """What one group used of one meter, and its cost."""

    key: str
    meter: str
    unit: str
    quantity: Decimal
    cost: Decimal
    resource_id: str = ""  # grouped by container: whose line it is (names can be reused)


def month_start_ms(year: int, month: int) -> int:
    """Epoch milliseconds of the first instant of YEAR-MONTH (UTC); month 13 is January of the next year."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


def month_of(at_ms: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(at_ms / 1000, UTC)
    return d.year, d.month


def _day(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms // 1000, UTC).strftime("%Y-%m-%d")


def _key(iv: Interval, by: str, at_ms: int) -> str:
    if by == "size":
        return iv.meter
    if by == "resource":
        return iv.kind
    if by == "day":
        return _day(at_ms)
    return iv.resource_name


def _cuts(start: int, end: int, prices: PriceHistory, by_day: bool) -> list[int]:
    """START, every price change and (BY_DAY) day boundary inside, END: the limits of the window's segments."""
    cuts = {start, end, *(round(t * 1000) for t in prices.changes_between(start / 1000, end / 1000))}
    if by_day:
        cuts.update(range((start // DAY_MS + 1) * DAY_MS, end, DAY_MS))
    return sorted(c for c in cuts if start <= c <= end)


def _fip_months(ivs: Iterable[Interval], now: int) -> dict[tuple[str, tuple[int, int]], tuple[int, Interval]]:
    """(resource, month) -> the first instant of that month the FIP was held, and its interval."""
    first: dict[tuple[str, tuple[int, int]], tuple[int, Interval]] = {}
    for iv in ivs:
        end = iv.end_ms if iv.end_ms is not None else now
        at = iv.start_ms
        while at <= end:
            year, month = month_of(at)
            key = (iv.resource_id, (year, month))
            if key not in first or at < first[key][0]:
                first[key] = (at, iv)
            at = month_start_ms(year, month + 1)
    return first


def rate(sums: Sums, fips: Iterable[Interval], prices: PriceHistory, since_ms: int, until_ms: int, now_ms: int,
         by: str = "size") -> list[Line]:
    """The lines of [SINCE, UNTIL) grouped BY one of GROUPS, sorted by key then meter.

    SUMS(lo, hi) gives the billed milliseconds of every per-time meter in [lo, hi), grouped by BY's key
    (by meter for day); FIPS are the FIP intervals that may bill a month inside the window.
    """
    totals: dict[tuple[str, str, str], list[Decimal]] = {}

    def add(key: str, meter: str, quantity: Decimal, cost: Decimal, resource_id: str = "") -> None:
        acc = totals.setdefault((key, meter, resource_id), [Decimal(0), Decimal(0)])
        acc[0] += quantity
        acc[1] += cost

    with localcontext() as ctx:
        ctx.prec = 50
        cuts = _cuts(since_ms, until_ms, prices, by == "day")
        for lo, hi in zip(cuts, cuts[1:]):
            book = prices.at(lo / 1000).prices
            for key, resource_id, meter, quantity, billed_ms in sums(lo, hi):
                per = SECONDS_PER_MONTH if UNITS[meter] == "GB-month" else 1
                amount = Decimal(billed_ms) / 1000 * quantity / per
                add(_day(lo) if by == "day" else key, meter, amount, book[meter] * amount, resource_id)
        for at, iv in _fip_months(fips, now_ms).values():
            if since_ms <= at < until_ms:
                add(_key(iv, by, at), iv.meter, Decimal(1), prices.at(at / 1000).prices[iv.meter],
                    iv.resource_id if by == "container" else "")
    return [
        Line(key, meter, UNITS[meter], q.quantize(QUANTITY, ROUND_HALF_EVEN), c.quantize(MONEY, ROUND_HALF_EVEN),
             resource_id)
        for (key, meter, resource_id), (q, c) in sorted(totals.items())
    ]


def total(lines: Iterable[Line]) -> Decimal:
    return sum((line.cost for line in lines), Decimal(0)).quantize(MONEY)
