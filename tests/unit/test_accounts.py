"""A tenant's account on real SQLite and PostgreSQL stores: usage from lifecycle changes, invoices, prices."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from seabox.billing.accounts import Accounts
from seabox.errors import InvalidArgument, NotFound, PaymentRequired
from seabox.model.container import ContainerStatus
from seabox.model.event import ContainerEvent
from seabox.store.billing import BillingStore
from seabox.store.db import open_engine
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

NOV = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
DEC = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def accounts(db_url: str) -> Accounts:
    store = Store(open_engine(db_url))
    return Accounts(store, BillingStore(store.engine))


def ran(accounts: Accounts, tenant_id: str, name: str, start: float, end: float | None) -> str:
    """A container of TENANT_ID that started at START and (if END) exited at END, as node reports say."""
    cid = name * 4
    accounts.store.insert_container(tenant_id, cid, name, "n1", None, spec(), quota=ROOMY["containers"])
    accounts.store.save_status(cid, ContainerStatus(state="running"),
                               [ContainerEvent(action="start", attributes={"size": "s4"}, at=start)])
    if end is not None:
        accounts.store.save_status(cid, ContainerStatus(state="exited"), [ContainerEvent(action="die", at=end)])
    return cid


def seconds(accounts: Accounts, tenant, **kw) -> Decimal:  # type: ignore[no-untyped-def]
    lines = accounts.usage(tenant, by="size", **kw).lines
    return sum((Decimal(x.quantity) for x in lines if x.meter == "container.s4"), Decimal(0))


def test_usage_bills_each_run_by_the_second_with_a_ten_second_minimum(accounts: Accounts) -> None:
    acme = accounts.store.create_tenant("acme")
    ran(accounts, acme.id, "web", NOV, NOV + 125.5)
    ran(accounts, acme.id, "job", NOV + 200, NOV + 203)
    ran(accounts, acme.id, "api", NOV + 300, None)  # still running: counted to now
    assert seconds(accounts, acme, since=NOV - 1, now=NOV + 340) == Decimal("125.5") + 10 + 40
    by_name = {x.key: x for x in accounts.usage(acme, since=NOV - 1, by="container", now=NOV + 340).lines
               if x.meter.startswith("container.")}
    assert {k: Decimal(v.quantity) for k, v in by_name.items()} == {"web": Decimal("125.5"), "job": 10, "api": 40}
    only_web = accounts.usage(acme, since=NOV - 1, now=NOV + 340, by="container", container="web").lines
    assert {x.resource_id for x in only_web} == {"web" * 4}  # (its root filesystem bills from its insert, today)
    assert [Decimal(x.quantity) for x in only_web if x.meter == "container.s4"] == [Decimal("125.5")]
    other = accounts.store.create_tenant("other")
    assert accounts.usage(other, since=NOV - 1, now=NOV + 340).lines == []  # nothing of acme's
    with pytest.raises(NotFound):
        accounts.usage(other, now=NOV + 340, container="web")  # acme's container is not other's to ask about


def test_bad_windows_groups_and_months_are_refused_naming_the_field(accounts: Accounts) -> None:
    acme = accounts.store.create_tenant("acme")
    for kw, field in (({"since": NOV, "until": NOV - 1}, "until"), ({"by": "colour"}, "by"), ({"since": 5.0}, "since"),
                      ({"since": NOV - 400 * 86400, "by": "day"}, "since")):
        with pytest.raises(InvalidArgument) as err:
            accounts.usage(acme, now=NOV, **kw)
        assert err.value.field == field
    for month in ("2026-13", "26-11", "november", "2027-01"):
        with pytest.raises(InvalidArgument) as err:
            accounts.invoice(acme, month, now=NOV)
        assert err.value.field == "month"


def test_an_ended_month_is_issued_once_and_a_later_price_change_leaves_it(accounts: Accounts) -> None:
    acme = accounts.store.create_tenant("acme")
    ran(accounts, acme.id, "web", DEC - 100, DEC + 50)  # across the month boundary
    draft = accounts.invoice(acme, now=DEC - 10)
    assert draft.status == "draft" and draft.month == "2026-11"
    issued = accounts.invoice(acme, "2026-11", now=DEC + 60)
    assert issued.status == "issued"
    [run] = [x for x in issued.lines if x.meter == "container.s4"]
    assert Decimal(run.quantity) == 100  # only November's part
    accounts.set_prices({"container.s4": "1"}, now=DEC + 70)
    assert accounts.invoice(acme, "2026-11", now=DEC + 80) == issued
    # December's part is priced by the book in force when each second ran
    [dec] = [x for x in accounts.invoice(acme, now=DEC + 80).lines if x.meter == "container.s4"]
    assert Decimal(dec.cost) == (Decimal("0.000003") * 50).quantize(Decimal("0.000001"))


def test_the_invoice_pass_issues_each_ended_month_once(accounts: Accounts) -> None:
    acme = accounts.store.create_tenant("acme")  # created now: months from this one on end by then
    accounts.store.create_tenant("idle")  # has used nothing: nothing due
    later = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() + 70 * 86400
    assert accounts.issue_due(now=later) == 0
    ran(accounts, acme.id, "web", time.time(), time.time() + 60)
    assert accounts.issue_due(now=later) == 2  # this month and the next
    assert accounts.issue_due(now=later) == 0


def test_prices_change_from_now_on_and_bad_ones_change_nothing(accounts: Accounts, tmp_path: Path) -> None:
    before = accounts.prices()
    for changes, field in (({"container.s4": "-1"}, "container.s4"), ({"container.s4": "cheap"}, "container.s4"),
                           ({"gpu": "1"}, "gpu"), ({}, "prices")):
        with pytest.raises(InvalidArgument) as err:
            accounts.set_prices(changes)
        assert err.value.field == field
    with pytest.raises(InvalidArgument) as err:
        accounts.set_prices({"fip": "2"}, effective_at=NOV, now=DEC)
    assert err.value.field == "effective_at"
    assert accounts.prices() == before
    (tmp_path / "prices.toml").write_text('fip = "2"\ncontainer.s1 = 0.0000005\n')
    assert accounts.apply_price_file(tmp_path / "prices.toml")
    assert not accounts.apply_price_file(tmp_path / "prices.toml")  # nothing changed the second time
    now = accounts.prices().prices
    assert (now["fip"], now["container.s1"], now["container.s4"]) == ("2", "0.0000005", before.prices["container.s4"])


def test_a_spend_limit_refuses_new_creates_once_reached_and_stops_only_when_asked(accounts: Accounts) -> None:
    acme = accounts.store.create_tenant("acme")
    accounts.check_spend(acme, now=NOV)  # no limit: nothing refused
    ran(accounts, acme.id, "web", NOV, NOV + 1000)  # $0.003 of an s4
    accounts.set_spend_limit(acme, "0.01")
    accounts.check_spend(acme, now=NOV + 2000)
    accounts.set_spend_limit(acme, "0.002")
    with pytest.raises(PaymentRequired) as err:
        accounts.check_spend(acme, now=NOV + 2000)
    assert err.value.field == "spend_limit" and "$0.002" in err.value.message
    assert accounts.over_limit(now=NOV + 2000) == []  # it does not stop what runs
    accounts.set_spend_limit(acme, "0.002", stop_running=True)
    assert accounts.over_limit(now=NOV + 2000) == [acme.id]
    accounts.check_spend(acme, now=DEC + 10)  # a new month starts from nothing
    for bad in ("-1", "lots", "NaN"):
        with pytest.raises(InvalidArgument) as err2:
            accounts.set_spend_limit(acme, bad)
        assert err2.value.field == "spend_limit"
    accounts.set_spend_limit(acme, None)
    accounts.check_spend(acme, now=NOV + 2000)
