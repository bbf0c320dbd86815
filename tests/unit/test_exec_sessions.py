"""Exec sessions in the store and across servers, on SQLite and PostgreSQL: two engines act as two servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from seabox.errors import Conflict, NotFound
from seabox.model.exec import LOST_EXIT_CODE, ExecConfig
from seabox.model.tenant import Tenant
from seabox.services.exec import ExecService, failed_start_exit_code
from seabox.store.db import open_engine
from seabox.store.exec_sessions import ExecSessions
from seabox.store.notify import Notifier
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

CID = "c" * 64
CONFIG = ExecConfig(cmd=["sh", "-c", "true"], env=[], workdir=None, user="", tty=True, stdin=False, stdout=True,
                    stderr=True)


@pytest.fixture
def setup(db_url: str) -> tuple[Store, ExecSessions, ExecSessions, Tenant]:
    store = Store(open_engine(db_url))
    tenant = store.create_tenant("a")
    store.insert_container(tenant.id, CID, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    return store, ExecSessions(open_engine(db_url)), ExecSessions(open_engine(db_url)), tenant


def test_a_session_made_on_one_server_is_started_once_and_its_exit_seen_on_the_other(setup: Any) -> None:
    _, one, two, tenant = setup
    s = one.create(tenant.id, CID, CONFIG)
    assert (s.state, s.exit_code, s.config) == ("created", None, CONFIG)
    with pytest.raises(NotFound, match="no such exec instance"):
        two.get("t-other", s.id)
    with ThreadPoolExecutor(6) as pool:
        claims = list(pool.map(lambda i: _try_claim((one, two)[i % 2], tenant.id, s.id, f"server-{i}"), range(6)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    running = two.get(tenant.id, s.id)
    assert (running.state, running.server) == ("running", winners[0])
    assert not two.finish(s.id, "someone-else", 1)
    assert one.finish(s.id, winners[0], 3)
    done = two.get(tenant.id, s.id)
    assert (done.state, done.exit_code) == ("exited", 3)
    with pytest.raises(Conflict, match="already been started"):
        two.claim(tenant.id, s.id, "server-x", 20, None)
    with pytest.raises(Conflict, match="not running"):
        two.resize(tenant.id, s.id, 24, 80)


def _try_claim(sessions: ExecSessions, tenant_id: str, sid: str, server: str) -> str | None:
    try:
        sessions.claim(tenant_id, sid, server, 20, None)
    except Conflict:
        return None
    return server


def test_a_session_whose_server_went_away_ends_as_lost_and_one_that_could_not_start_may_start_again(
    setup: Any,
) -> None:
    _, one, two, tenant = setup
    s = one.create(tenant.id, CID, CONFIG)
    one.claim(tenant.id, s.id, "server-1", 20, None)
    one.unclaim(s.id, "server-1")
    assert two.get(tenant.id, s.id).state == "created"
    one.claim(tenant.id, s.id, "server-1", 0.3, None)
    assert one.renew("server-1", [s.id], 0.3) == {s.id}
    time.sleep(0.5)  # server-1 stops renewing: it died
    lost = two.get(tenant.id, s.id)
    assert (lost.state, lost.exit_code) == ("exited", LOST_EXIT_CODE)
    assert not one.finish(s.id, "server-1", 0)  # a stalled server cannot undo that
    assert one.renew("server-1", [s.id], 20) == set()
    stopping = one.create(tenant.id, CID, CONFIG)
    one.claim(tenant.id, stopping.id, "server-1", 20, None)
    one.end_server("server-1")
    assert two.get(tenant.id, stopping.id).exit_code == LOST_EXIT_CODE


def test_a_resize_before_the_start_is_kept_for_it_and_sessions_go_with_their_container(setup: Any) -> None:
    store, one, two, tenant = setup
    s = one.create(tenant.id, CID, CONFIG)
    two.resize(tenant.id, s.id, 30, 100)
    assert one.claim(tenant.id, s.id, "server-1", 20, None).size == (30, 100)
    two.resize(tenant.id, s.id, 40, 120)
    assert one.sizes("server-1") == {s.id: (40, 120)}
    assert one.claim(tenant.id, one.create(tenant.id, CID, CONFIG).id, "server-1", 20, (10, 20)).size == (10, 20)
    store.delete_container(CID)
    with pytest.raises(NotFound):
        two.get(tenant.id, s.id)


def test_a_tenant_keeps_a_bounded_number_of_sessions_that_are_not_running(setup: Any) -> None:
    _, one, _, tenant = setup
    running = one.create(tenant.id, CID, CONFIG)
    one.claim(tenant.id, running.id, "server-1", 20, None)
    made = [one.create(tenant.id, CID, CONFIG, keep=3).id for _ in range(5)]
    for sid in made[:2]:
        with pytest.raises(NotFound):
            one.get(tenant.id, sid)
    assert [one.get(tenant.id, sid).state for sid in made[2:]] == ["created"] * 3
    assert one.get(tenant.id, running.id).state == "running"


class FakeProcess:
    """An exec'd process that ends when told to; records the resizes it got."""

    tty = True

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.resized = asyncio.Event()
        self.ended = asyncio.Event()
        self.killed: int | None = None

    def resize(self, height: int, width: int) -> None:
        self.sizes.append((height, width))
        self.resized.set()

    def close(self) -> None:
        pass

    async def kill(self, sig: int = 9) -> None:
        self.killed = sig
        self.ended.set()

    async def wait(self) -> int:
        await self.ended.wait()
        return 7

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[tuple[str, bytes]]:
        await self.ended.wait()
        return
        yield


class FakeContainers:
    """The part of ContainerService that ExecService uses."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.process = FakeProcess()

    def get_running(self, tenant: Tenant, ref: str) -> Any:
        return self.store.find_container(tenant.id, ref)

    async def exec(self, *args: Any, **kwargs: Any) -> FakeProcess:
        return self.process


@pytest.fixture
async def servers(db_url: str) -> AsyncIterator[tuple[ExecService, ExecService, Store, Tenant]]:
    store = Store(open_engine(db_url))
    tenant = store.create_tenant("a")
    store.insert_container(tenant.id, CID, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    made = []
    for name in ("server-a", "server-b"):
        engine = open_engine(db_url)
        made.append(ExecService(ExecSessions(engine), FakeContainers(store), Notifier(engine), name))  # type: ignore[arg-type]
    loops = [asyncio.create_task(s.run()) for s in made]
    await asyncio.sleep(0.3)  # listening
    yield made[0], made[1], store, tenant
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    for s in made:
        assert s.notifier is not None
        await s.notifier.close()


async def test_a_resize_through_another_server_reaches_the_process_at_once_and_the_exit_is_seen_there(
    servers: tuple[ExecService, ExecService, Store, Tenant],
) -> None:
    a, b, _, tenant = servers
    s = b.create(tenant, "web", CONFIG)
    session, proc = await a.start(tenant, s.id, tty=True, stdin=False, size=(24, 80))
    process = a.containers.process  # type: ignore[attr-defined]
    assert process.sizes == [(24, 80)]
    assert b.get(tenant, s.id).state == "running"
    process.resized.clear()
    started = time.monotonic()
    await b.resize(tenant, s.id, 50, 132)
    await asyncio.wait_for(process.resized.wait(), 2)
    assert time.monotonic() - started < 1.0  # notified, not found on a lease renewal 3 s later
    assert process.sizes == [(24, 80), (50, 132)]
    a.detach(session.id, proc)
    process.ended.set()
    assert await _exited(b, tenant, s.id) == 7


async def _exited(service: ExecService, tenant: Tenant, sid: str) -> int | None:
    for _ in range(50):
        if (got := service.get(tenant, sid)).state == "exited":
            return got.exit_code
        await asyncio.sleep(0.05)
    raise AssertionError("the session did not end")


async def test_a_session_whose_client_left_has_its_process_killed_and_its_end_recorded(
    servers: tuple[ExecService, ExecService, Store, Tenant],
) -> None:
    a, b, _, tenant = servers
    s = a.create(tenant, "web", CONFIG)
    session, proc = await a.start(tenant, s.id, tty=True, stdin=False, size=None)
    a.abandon(session.id, proc)
    assert await _exited(b, tenant, s.id) == 7
    assert a.containers.process.killed == 9  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec failed: unable to start container process: exec: "nope": executable file not found in $PATH', 127),
        ('exec failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory',
         127),
        ('exec failed: unable to start container process: exec: "/etc/passwd": permission denied', 126),
        ('exec failed: unable to start container process: exec: "/tmp": is a directory', 126),
        ("exec failed: something else entirely", 128),
    ],
)
def test_an_exec_the_runtime_could_not_start_gets_dockers_exit_code(message: str, code: int) -> None:
    assert failed_start_exit_code(message) == code
