"""Change notifications on SQLite and PostgreSQL: two engines on one database act as two servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from seabox.errors import InvalidArgument
from seabox.store.db import open_engine
from seabox.store.notify import Notifier


@pytest.fixture
async def servers(db_url: str) -> AsyncIterator[tuple[Notifier, Notifier]]:
    one, two = Notifier(open_engine(db_url)), Notifier(open_engine(db_url))
    yield one, two
    await one.close()
    await two.close()


async def test_a_notification_from_one_server_wakes_a_wait_on_another(servers: tuple[Notifier, Notifier]) -> None:
    one, two = servers
    started = time.monotonic()
    assert await two.wait("containers", 0.3) is False  # nothing was sent: the wait times out
    assert time.monotonic() - started >= 0.3
    waiting = asyncio.create_task(two.wait("containers", 10))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    started = time.monotonic()
    await asyncio.to_thread(one.notify, "containers")
    assert await waiting is True
    assert time.monotonic() - started < 2


async def test_a_notification_while_nobody_waits_is_kept_for_the_next_wait_only(
    servers: tuple[Notifier, Notifier],
) -> None:
    one, two = servers
    assert await two.wait("nodes", 0) is False  # now listening to "nodes"
    one.notify("nodes")
    one.notify("volumes")  # another channel wakes nobody waiting on "nodes"
    assert await two.wait("nodes", 5) is True
    assert await two.wait("nodes", 0.2) is False
    assert await one.wait("volumes", 0.2) is False  # sent before `one` listened to it


async def test_every_waiter_on_the_channel_wakes(servers: tuple[Notifier, Notifier]) -> None:
    one, two = servers
    await asyncio.gather(one.wait("leases", 0), two.wait("leases", 0))
    waiters = [asyncio.create_task(n.wait("leases", 10)) for n in (one, two, two)]
    await asyncio.sleep(0.1)
    one.notify("leases")
    assert await asyncio.gather(*waiters) == [True, True, True]


async def test_others_only_wakes_the_other_servers_and_not_the_sender(servers: tuple[Notifier, Notifier]) -> None:
    one, two = servers
    await asyncio.gather(one.wait("changes", 0), two.wait("changes", 0))
    waiters = [asyncio.create_task(n.wait("changes", 1.0)) for n in (one, two)]
    await asyncio.sleep(0.1)
    await asyncio.to_thread(lambda: one.notify("changes", others_only=True))
    assert await asyncio.gather(*waiters) == [False, True]


async def test_bad_channels_and_timeouts_are_refused(servers: tuple[Notifier, Notifier]) -> None:
    for bad in ("", "Containers", "1x", "a" * 64, "x;drop"):
        with pytest.raises(InvalidArgument):
            servers[0].notify(bad)
    with pytest.raises(InvalidArgument):
        await servers[0].wait("ok", float("nan"))


async def test_waiters_wake_when_the_postgresql_listener_lost_its_connection(pg_database: str) -> None:
    engine = open_engine(pg_database)
    notifier = Notifier(engine)
    try:
        assert await notifier.wait("containers", 0) is False
        waiting = asyncio.create_task(notifier.wait("containers", 20))
        await asyncio.sleep(0.1)
        with engine.begin() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = 'seabox-notify'")).scalar()
        assert killed == 1
        assert await waiting is True  # anything may have changed while nobody listened
        deadline = time.monotonic() + 10
        while True:  # and it listens again: a notification sent after it reconnected arrives
            notifier.notify("containers")
            if await notifier.wait("containers", 0.5) or time.monotonic() > deadline:
                break
        assert await notifier.wait("containers", 0) is False
        notifier.notify("containers")
        assert await notifier.wait("containers", 5) is True
    finally:
        await notifier.close()
