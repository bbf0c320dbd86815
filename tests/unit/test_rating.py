"""Billing by the second: the meter's intervals from lifecycle events, and rating them under versioned prices."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, insert, select

from seabox.billing import meter
from seabox.billing.tally import INTERVAL_COLUMNS, tally
from seabox.billing.prices import DEFAULT_PRICES, PriceBook, PriceHistory
from seabox.billing.rating import Interval, Line, month_start_ms, rate, total
from seabox.model.event import ContainerEvent
from seabox.store import tables as t
from seabox.store.billing import BillingStore

JAN31 = datetime(2026, 1, 31, 23, 58, tzinfo=UTC).timestamp()  # a month boundary two minutes later
S4 = DEFAULT_PRICES["container.s4"]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    yield engine
    engine.dispose()


def run(start: float, end: float | None, minimum: int = 10_000, meter_: str = "container.s4") -> Interval:
    return Interval("container", "c1", "web", meter_, Decimal(1), round(start * 1000),
                    None if end is None else round(end * 1000), minimum)


def rated(engine: Engine, intervals: list[Interval], prices: PriceHistory, since: int, until: int, now: int,
          by: str = "size") -> list[Line]:
    """INTERVALS written to the ledger of a new tenant, and rated as the accounts rate them."""
    tenant, store = uuid.uuid4().hex, BillingStore(engine)
    with engine.begin() as conn:
        conn.execute(insert(t.usage_intervals), [
            {"tenant_id": tenant, "kind": iv.kind, "resource_id": iv.resource_id, "resource_name": iv.resource_name,
             "meter": iv.meter, "quantity": str(iv.quantity), "start_ms": iv.start_ms, "end_ms": iv.end_ms,
             "minimum_ms": iv.minimum_ms, "lost": False} for iv in intervals])
        tally(conn, conn.execute(select(*INTERVAL_COLUMNS).where(t.usage_intervals.c.tenant_id == tenant)).all())
    group = "size" if by == "day" else by
    return rate(lambda lo, hi: store.sums(tenant, group, lo, hi, now), store.fips(tenant, since, until), prices,
                since, until, now, by)


def test_a_run_bills_its_seconds_and_a_short_one_at_least_ten(engine: Engine) -> None:
    [line] = rated(engine, [run(0, 100)], PriceHistory(), 0, 10**9, 10**9)
    assert (line.quantity, line.cost) == (Decimal(100), (S4 * 100).quantize(Decimal("0.000001")))
    [short] = rated(engine, [run(0, 3)], PriceHistory(), 0, 10**9, 10**9)
    assert short.quantity == 10
    # still running 4 s after its start: billed to now, and already its 10 s
    [running] = rated(engine, [run(0, None)], PriceHistory(), 0, 10**9, 4000)
    assert running.quantity == 10


def test_a_price_change_mid_run_prices_each_part_by_its_version(engine: Engine) -> None:
    prices = PriceHistory((PriceBook(50.0, {**DEFAULT_PRICES, "container.s4": Decimal("0.001")}),))
    [line] = rated(engine, [run(0, 100)], prices, 0, 10**9, 10**9)
    assert line.cost == (S4 * 50 + Decimal("0.001") * 50).quantize(Decimal("0.000001"))
    assert prices.at(49.9).prices["container.s4"] == S4  # the past keeps its price


def test_a_fip_bills_once_per_calendar_month_it_was_held_in(engine: Engine) -> None:
    feb, mar = month_start_ms(2026, 2), month_start_ms(2026, 3)
    held = [Interval("fip", "198.18.0.1", "198.18.0.1", "fip", Decimal(1), feb - 1000, feb + 5000),
            Interval("fip", "198.18.0.1", "198.18.0.1", "fip", Decimal(1), feb + 9000, None)]
    lines = rated(engine, held, PriceHistory(), month_start_ms(2026, 1), mar + 10, mar + 10)
    assert [(x.quantity, x.cost) for x in lines] == [(3, 3)]  # January, February (once), March
    assert rated(engine, held, PriceHistory(), feb + 7000, mar, mar + 10) == []  # February's month was billed before


def test_storage_bills_gigabyte_months_and_day_grouping_splits_at_midnight(engine: Engine) -> None:
    day = 86400
    volume = Interval("volume", "t/v", "v", "storage", Decimal(10), 0, day * 3000)  # 10 GB for 3 days
    [line] = rated(engine, [volume], PriceHistory(), 0, 10**12, 10**12)
    assert line.unit == "GB-month" and line.quantity == Decimal(1)  # 30 GB-days are one GB-month
    assert line.cost == Decimal("0.100000")
    days = rated(engine, [run(day - 5, day + 5)], PriceHistory(), 0, 3 * day * 1000, 10**12, by="day")
    assert [(x.key, x.quantity) for x in days] == [("1970-01-01", 5), ("1970-01-02", 5)]


# the property: random lifecycles, checked against a reference written independently ----------------
events = st.lists(st.tuples(st.integers(0, 400), st.sampled_from(["start", "die", "lost", "reported", "price"]),
                            st.integers(1, 99)), max_size=25)


def reference(runs: list[tuple[int, int]], versions: list[tuple[int, Fraction]], month: tuple[int, int]) -> Decimal:
    """What the month's invoice should say: each run billed max(its length, 10 s), each part of it at the
    price in force then, counting only the part inside the month."""
    lo, hi = month_start_ms(*month), month_start_ms(month[0], month[1] + 1)
    cost = Fraction(0)
    for start, end in runs:
        end = max(end, start + 10_000)
        for i, (since, price) in enumerate(versions):
            until = versions[i + 1][0] if i + 1 < len(versions) else 10**15
            a, b = max(start, since, lo), min(end, until, hi)
            if b > a:
                cost += Fraction(b - a, 1000) * price
    return Decimal(cost.numerator) / Decimal(cost.denominator)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=events)
def test_every_invoice_matches_the_reference_over_random_lifecycles(engine: Engine, history: list) -> None:
    tenant, cid = uuid.uuid4().hex, uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(delete(t.price_books))
    store = BillingStore(engine)
    runs: list[tuple[int, int]] = []
    versions: list[tuple[int, Fraction]] = [(0, Fraction(S4))]
    running_since: int | None = None
    lost_at: int | None = None  # the start of a run whose node was lost
    lost_end = 0  # when that node was last heard from
    clock = JAN31
    for step, action, value in sorted(history, key=lambda e: (e[0], e[2])):  # in time order
        clock = JAN31 + step + value / 100  # up to ~6 minutes, across the month boundary
        at = round(clock * 1000)
        with engine.begin() as conn:
            if action == "start":
                if running_since is not None:
                    runs.append((running_since, at))
                elif lost_at is not None:  # a fresh start: the lost run stays ended where its node was last heard
                    runs.append((lost_at, lost_end))
                    lost_at = None
                meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="start", at=clock,
                                                                                 attributes={"size": "s4"})], clock)
                running_since = at
            elif action == "die" and (running_since is not None or lost_at is not None):
                start = running_since if running_since is not None else lost_at
                meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="die", at=clock)], clock)
                runs.append((start, at))  # type: ignore[arg-type]
                running_since = lost_at = None
            elif action == "lost" and running_since is not None:
                meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="lost", at=clock)], clock)
                lost_at, lost_end, running_since = running_since, at, None
            elif action == "reported" and lost_at is not None:  # its node is back: it ran all along
                meter.container_change(conn, tenant, cid, "web", [], clock, state="running")
                running_since, lost_at = lost_at, None
            elif action == "price":
                price = Decimal(value) / 10**6
                if store.add_price_book(PriceBook(clock, {**DEFAULT_PRICES, "container.s4": price})):
                    versions.append((at, Fraction(price)))
    now = round((clock + 1000) * 1000)
    if running_since is not None:
        runs.append((running_since, now))
    if lost_at is not None:  # never heard of again: billed to its node's last heartbeat
        runs.append((lost_at, lost_end))
    for month in ((2026, 1), (2026, 2)):
        lo, hi = month_start_ms(*month), month_start_ms(month[0], month[1] + 1)
        lines = rate(lambda a, b: store.sums(tenant, "size", a, b, now), store.fips(tenant, lo, hi), store.price_history(),
                     lo, hi, now)
        assert total(lines) == reference(runs, versions, month).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)


# a live resize (docker update --memory on a running container) ---------------------------------------
def _billed_by_size(engine: Engine, tenant: str, now: int) -> dict[str, int]:
    """Billed milliseconds of TENANT's runs by meter, over all time."""
    out: dict[str, int] = {}
    for _key, _rid, meter_, _quantity, billed in BillingStore(engine).sums(tenant, "size", 0, 10**15, now):
        out[meter_] = out.get(meter_, 0) + billed
    return out


def _lifecycle(engine: Engine, start: float, changes: list[tuple[float, str]], end: float) -> dict[str, int]:
    """A run of an s4 from START, resized at each (at, size) of CHANGES, ending at END; what each size billed."""
    tenant, cid = uuid.uuid4().hex, uuid.uuid4().hex
    with engine.begin() as conn:
        meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="start", at=start,
                                                                         attributes={"size": "s4"})], start)
        for at, size in changes:
            meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="update", at=at,
                                                                             attributes={"size": size})], at)
        meter.container_change(conn, tenant, cid, "web", [ContainerEvent(action="die", at=end)], end)
    return _billed_by_size(engine, tenant, 10**15)


def test_a_live_resize_bills_each_size_for_its_part_of_the_run(engine: Engine) -> None:
    assert _lifecycle(engine, 1000, [(1050, "m1")], 1100) == {"container.s4": 50_000, "container.m1": 50_000}
    # a run shorter than the minimum: the old size bills its 3 s, the new one what is left of the 10 s
    assert _lifecycle(engine, 1000, [(1003, "m1")], 1004) == {"container.s4": 3_000, "container.m1": 7_000}
    [line] = rated(engine, [run(0, 50, meter_="container.s4"), run(50, 100, 0, "container.m1")], PriceHistory(),
                   0, 10**9, 10**9)[:1]
    assert line.meter == "container.m1" and line.cost == (DEFAULT_PRICES["container.m1"] * 50).quantize(Decimal("0.000001"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(0, 40_000), cuts=st.lists(st.tuples(st.integers(0, 40_000), st.sampled_from(["s1", "m1", "l1"])),
                                                     max_size=5))
def test_resizes_split_a_run_without_changing_what_it_bills_in_all(engine: Engine, length: int, cuts: list) -> None:
    """However a run is resized, it bills max(its length, 10 s) in all, each size for its own span, and the
    rest of the minimum at the size it ended with."""
    start = 5000.0
    changes = sorted((min(at, length), size) for at, size in cuts)
    billed = _lifecycle(engine, start, [(start + at / 1000, size) for at, size in changes], start + length / 1000)
    assert sum(billed.values()) == max(length, 10_000)
    spans: dict[str, int] = {}
    points = [(0, "s4"), *changes, (length, "")]
    for (a, size), (b, _next) in zip(points, points[1:]):
        spans[f"container.{size}"] = spans.get(f"container.{size}", 0) + b - a
    last = f"container.{points[-2][1]}"
    spans[last] += max(0, 10_000 - length)
    assert {k: v for k, v in billed.items() if v} == {k: v for k, v in spans.items() if v}
