"""Leases on SQLite and PostgreSQL: two engines on one database act as two servers competing for a controller."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from seabox.errors import InvalidArgument
from seabox.store.db import open_engine
from seabox.store.leases import Leases


@pytest.fixture
def servers(db_url: str) -> tuple[Leases, Leases]:
    return Leases(open_engine(db_url)), Leases(open_engine(db_url))


def test_one_server_holds_a_lease_until_it_releases_it_and_the_next_holder_gets_a_higher_generation(
    servers: tuple[Leases, Leases],
) -> None:
    one, two = servers
    first = one.acquire("placement", "server-1", ttl=30)
    assert first is not None and (first.owner, first.generation) == ("server-1", 1)
    assert two.acquire("placement", "server-2", ttl=30) is None
    assert two.holder("placement") == first
    again = one.acquire("placement", "server-1", ttl=60)  # the holder asking again extends its lease
    assert again is not None and again.generation == 1 and again.expires_at > first.expires_at
    renewed = one.renew("placement", "server-1", ttl=30)
    assert renewed is not None and renewed.generation == 1
    assert two.renew("placement", "server-2", ttl=30) is None
    assert not two.release("placement", "server-2")
    assert one.release("placement", "server-1")
    assert two.holder("placement") is None
    taken = two.acquire("placement", "server-2", ttl=30)
    assert taken is not None and (taken.owner, taken.generation) == ("server-2", 2)
    assert one.renew("placement", "server-1", ttl=30) is None
    assert one.acquire("other", "server-1", ttl=30) is not None  # leases are independent by name


def test_an_expired_lease_goes_to_the_next_server_and_its_old_holder_cannot_renew_it(
    servers: tuple[Leases, Leases],
) -> None:
    one, two = servers
    assert one.acquire("cron", "server-1", ttl=0.3) is not None
    assert two.acquire("cron", "server-2", ttl=30) is None
    time.sleep(0.4)
    assert one.holder("cron") is None
    taken = two.acquire("cron", "server-2", ttl=30)
    assert taken is not None and taken.generation == 2
    assert one.renew("cron", "server-1", ttl=30) is None
    assert one.acquire("cron", "server-1", ttl=30) is None


def test_of_many_servers_asking_at_once_exactly_one_gets_the_lease(servers: tuple[Leases, Leases]) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: servers[i % 2].acquire("leader", f"server-{i}", ttl=30), range(24)))
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1
    assert servers[0].holder("leader") == winners[0]


@pytest.mark.parametrize(("name", "owner", "ttl"), [("", "o", 1), ("n", "", 1), ("n", "o", 0),
                                                    ("n", "o", float("nan")), ("n" * 129, "o", 1)])
def test_bad_lease_arguments_are_refused(servers: tuple[Leases, Leases], name: str, owner: str, ttl: float) -> None:
    with pytest.raises(InvalidArgument):
        servers[0].acquire(name, owner, ttl)
