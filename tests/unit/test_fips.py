"""Floating IP records on real SQLite and PostgreSQL: allocation from the range, quota, attach rules, names, release."""

from __future__ import annotations

import threading
from ipaddress import IPv4Network

import pytest

from seabox.errors import Conflict, Forbidden, NotFound
from seabox.model.fip import free_addresses
from seabox.model.quota import Quota
from seabox.store.db import open_engine
from seabox.store.fips import FipStore
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

RANGE = IPv4Network("198.18.0.0/29")  # 198.18.0.1 .. 198.18.0.6
FIPS_3, FIPS_2 = Quota("fips", 3), Quota("fips", 2)


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(open_engine(db_url))


@pytest.fixture
def fips(store: Store) -> FipStore:
    return FipStore(store.engine)


def test_free_addresses_skip_network_broadcast_and_used_ones() -> None:
    assert free_addresses(RANGE, {"198.18.0.2"}, 3) == ["198.18.0.1", "198.18.0.3", "198.18.0.4"]
    assert free_addresses(IPv4Network("198.18.0.8/31"), set(), 2) == ["198.18.0.8", "198.18.0.9"]
    with pytest.raises(Conflict, match="no free address"):
        free_addresses(RANGE, set(), 7)


def test_allocation_is_all_or_nothing_within_the_quota(store: Store, fips: FipStore) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    assert fips.allocate(a.id, RANGE, 2, quota=FIPS_3) == ["198.18.0.1", "198.18.0.2"]
    with pytest.raises(Forbidden, match="fips quota of 3 reached") as err:
        fips.allocate(a.id, RANGE, 2, quota=FIPS_3)
    assert err.value.field == "fips"
    assert [f.address for f in fips.list(a.id)] == ["198.18.0.1", "198.18.0.2"]  # nothing more allocated
    assert fips.allocate(b.id, RANGE, 1, quota=FIPS_3) == ["198.18.0.3"]  # addresses are unique across tenants
    assert fips.list(b.id)[0].tenant == b.id and len(fips.list(a.id)) == 2


def test_servers_allocating_at_once_never_share_an_address_or_pass_the_quota(store: Store, db_url: str) -> None:
    tenants = [store.create_tenant(f"t{i}") for i in range(3)]
    engines = [open_engine(db_url) for _ in range(3)]  # three "servers" on one database
    got: list[str] = []
    errors: list[Exception] = []

    def allocate(engine_index: int, tenant_id: str) -> None:
        try:
            got.extend(FipStore(engines[engine_index]).allocate(tenant_id, IPv4Network("198.18.0.0/24"), 1,
                                                                quota=FIPS_2))
        except Forbidden as exc:
            errors.append(exc)

    threads = [threading.Thread(target=allocate, args=(i % 3, tenants[i % 3].id)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == len(set(got)) == 6 and len(errors) == 6  # each tenant got exactly its 2
    for engine in engines:
        engine.dispose()


def test_attach_moves_only_with_force_and_one_per_container(store: Store, fips: FipStore) -> None:
    a = store.create_tenant("a")
    web = store.insert_container(a.id, "1" * 64, "web", "local", "10.208.1.2", spec(), quota=ROOMY["containers"])
    db = store.insert_container(a.id, "2" * 64, "db", "local", "10.208.1.3", spec(), quota=ROOMY["containers"])
    first, second = fips.allocate(a.id, RANGE, 2, quota=FIPS_2)
    fips.attach(a.id, first, web.id, force=False)
    fips.attach(a.id, first, web.id, force=False)  # again: nothing to do
    assert store.get_container(web.id).fip == first and fips.get(a.id, first).container_name == "web"
    with pytest.raises(Conflict, match="attached to container web"):
        fips.attach(a.id, first, db.id, force=False)
    with pytest.raises(Conflict, match=f"already has floating IP {first}"):
        fips.attach(a.id, second, web.id, force=True)
    fips.attach(a.id, first, db.id, force=True)
    assert store.get_container(db.id).fip == first and store.get_container(web.id).fip is None
    assert [f.address for f in fips.list(a.id, dangling=True)] == [second]
    assert [f.address for f in fips.list(a.id, dangling=False)] == [first]
    with pytest.raises(Conflict, match="attached to container db"):
        fips.release(a.id, first)
    store.delete_container(db.id)  # rm detaches; the floating IP stays the tenant's
    assert fips.get(a.id, first).container is None
    fips.release(a.id, first)
    assert [f.address for f in fips.list(a.id)] == [second]


def test_names_are_unique_per_tenant_and_find_the_address(store: Store, fips: FipStore) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    [x], [y] = fips.allocate(a.id, RANGE, 1, quota=FIPS_2), fips.allocate(b.id, RANGE, 1, quota=FIPS_2)
    fips.rename(a.id, x, "front")
    fips.rename(b.id, y, "front")  # another tenant may use the same name
    assert fips.get(a.id, "front").address == x and fips.get(b.id, "front").address == y
    [z] = fips.allocate(a.id, RANGE, 1, quota=FIPS_2)
    with pytest.raises(Conflict, match="already in use"):
        fips.rename(a.id, z, "front")
    for ref in (y, "nosuch"):  # another tenant's floating IP is as missing as one that does not exist
        with pytest.raises(NotFound, match=f"no such floating IP: {ref}"):
            fips.get(a.id, ref)
