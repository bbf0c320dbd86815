"""The http-mode executor and its warm pool: replicas of a function serving HTTP on $PORT, kept up between calls.

A replica is an ordinary container of the function's tenant, named NAME-fn-<hex> and labelled with the
function's id and generation, so that a server finds its replicas again after a restart. One replica
serves up to `[functions] replica_calls` calls at once; when every replica of the current generation
is that busy another one starts, up to `max_replicas` and the function's --concurrency. A call that
finds no free replica waits (within its deadline) until one is free or ready: the first call after a
scale to zero is held until a new replica accepts on its port, never dropped. Replicas of an older
generation take no new calls and are removed once their calls ended. The pool pass
(controllers/function_pool.py) keeps --min-warm replicas up and removes idle ones: a replica is idle
when neither this server used it nor a call of its function started or ended on any server (the
store's last call time; a call running anywhere keeps its function busy) for `idle_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from seabox.config import FunctionsConfig
from seabox.errors import Conflict, NotFound, SeaboxError, UpstreamError
from seabox.model.container import Container, ContainerCreate
from seabox.model.function import Function
from seabox.model.tenant import Tenant
from seabox.services.containers import ContainerService
from seabox.services.function_exec import Call, Reply
from seabox.services.http_forward import exchange

log = logging.getLogger(__name__)

FUNCTION_LABEL = "seabox.function"  # a replica's function id
GENERATION_LABEL = "seabox.function.generation"  # the function generation it runs
READY_POLL = 0.02  # seconds between attempts to connect to a starting replica's port
WARM_START_WAIT = 60.0  # seconds the pool pass waits for a --min-warm replica to accept on its port


def replica_name(function: str) -> str:
    return f"{function[:52]}-fn-{secrets.token_hex(3)}"


def function_of(c: Container) -> tuple[str, int] | None:
    """The (function id, generation) a container is a replica of, or None for any other container."""
    fid = c.spec.labels.get(FUNCTION_LABEL)
    generation = c.spec.labels.get(GENERATION_LABEL, "")
    return (fid, int(generation)) if fid and generation.isdecimal() else None


@dataclass
class Replica:
    """One warm container of a function, as this server uses it."""

    cid: str
    node: str
    generation: int
    inflight: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    ready: bool = False


@dataclass
class Pool:
    """The replicas of one function on this server, and the calls waiting for one."""

    function: Function
    replicas: dict[str, Replica] = field(default_factory=dict)
    starting: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    failure: tuple[float, SeaboxError] | None = None  # when the last start failed, and why

    def current(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.generation == self.function.generation]

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


class HttpExecutor:
    """Runs http-mode calls on warm replicas (the Executor and KeepsWarm protocols)."""

    def __init__(self, cfg: FunctionsConfig, containers: ContainerService) -> None:
        self.cfg = cfg
        self.containers = containers
        self._pools: dict[str, Pool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # the Executor protocol ------------------------------------------------------------------------
    async def run(self, call: Call) -> Reply:
        pool = self.pool(call.function)
        what = f"function {call.function.spec.name}"
        while True:
            replica = await self._acquire(pool, call.tenant, time.monotonic())
            try:
                stream = await self.containers.links.get(replica.node).dial(replica.cid, call.function.spec.port)
            except (Conflict, NotFound, UpstreamError) as exc:  # gone or broken: nothing was sent, try another
                log.warning("%s: replica %s cannot be reached (%s): replaced", what, replica.cid[:12], exc.message)
                await self._drop(pool, call.tenant, replica)
                continue
            try:
                reply = await exchange(stream, call, what)
            finally:
                stream.close()
                replica.inflight -= 1
                replica.idle_since = time.monotonic()
                for cid in self._old_idle(pool):
                    self._spawn(self._remove(call.tenant, cid))
                await pool.notify()
            reply.container = replica.cid
            return reply

    # the KeepsWarm protocol -----------------------------------------------------------------------
    def warm_replicas(self, function: Function) -> int:
        pool = self._pools.get(function.id)
        return 0 if pool is None else sum(r.ready for r in pool.current())

    async def release(self, function: Function) -> None:
        """FUNCTION (as it was) was removed or updated: its replicas take no more calls; the idle ones are
        removed before this returns, the busy ones once their calls ended."""
        pool = self.pool(function)
        pool.function = function.model_copy(update={"generation": function.generation + 1})
        tenant = self.containers.store.tenant_by_id(function.tenant)
        await asyncio.gather(*(self._remove(tenant, cid) for cid in self._old_idle(pool)))
        await pool.notify()

    # the pool -------------------------------------------------------------------------------------
    def pool(self, function: Function) -> Pool:
        """FUNCTION's pool, found again from its labelled containers the first time this server needs it."""
        pool = self._pools.get(function.id)
        if pool is None:
            pool = self._pools[function.id] = Pool(function)
            tenant = self.containers.store.tenant_by_id(function.tenant)
            for c in self._containers_of(function):
                if c.status.state == "running":
                    _, generation = function_of(c) or ("", 0)
                    pool.replicas[c.id] = Replica(c.id, c.status.node or "", generation, ready=True)
                elif c.status.state != "removing":
                    self._spawn(self._remove(tenant, c.id))
        elif function.generation >= pool.function.generation:
            pool.function = function
        return pool

    def _containers_of(self, function: Function) -> list[Container]:
        return [c for c in self.containers.store.list_containers(function.tenant)
                if (function_of(c) or ("",))[0] == function.id]

    def limit(self, function: Function) -> int:
        """Replicas FUNCTION may have at once."""
        return max(1, min(self.cfg.max_replicas, math.ceil(function.spec.concurrency / self.cfg.replica_calls)))

    async def _acquire(self, pool: Pool, tenant: Tenant, arrived: float) -> Replica:
        """A ready replica of the current generation with a free slot, starting one if all are busy; waits
        until there is one (the caller's deadline bounds the wait)."""
        while True:
            free = [r for r in pool.current() if r.ready and r.inflight < self.cfg.replica_calls]
            if free:
                replica = min(free, key=lambda r: r.inflight)
                replica.inflight += 1
                return replica
            if pool.failure is not None and pool.failure[0] >= arrived and not pool.current():
                raise pool.failure[1]
            busy = all(r.inflight >= self.cfg.replica_calls for r in pool.current() if r.ready)
            if busy and pool.starting == 0 and len(pool.current()) < self.limit(pool.function):
                self._spawn(self.start_replica(pool, tenant, pool.function.spec.timeout))
            async with pool.changed:
                await pool.changed.wait()

    async def start_replica(self, pool: Pool, tenant: Tenant, wait: float) -> None:
        """One more replica of the pool's function, ready once it accepts on its port within WAIT seconds (else
        removed). A failure is kept for the calls waiting."""
        fn = pool.function
        pool.starting += 1
        cid = ""
        try:
            req = ContainerCreate(
                image=fn.spec.image, name=replica_name(fn.spec.name), cmd=fn.spec.cmd, size=fn.spec.size,
                env=[*fn.spec.env, f"PORT={fn.spec.port}"],
                labels={FUNCTION_LABEL: fn.id, GENERATION_LABEL: str(fn.generation)},
            )
            c = await self.containers.create(tenant, req, quota="function_containers")
            cid = c.id
            pool.replicas[cid] = replica = Replica(cid, c.status.node or "", fn.generation)
            c = await self.containers.start(tenant, cid)
            async with asyncio.timeout(wait):
                await self._until_accepting(c, fn)
            replica.ready = True
            replica.idle_since = time.monotonic()
            pool.failure = None
        except SeaboxError as exc:
            log.warning("function %s: a replica did not start: %s", fn.spec.name, exc.message)
            pool.failure = (time.monotonic(), exc)
            await self._drop_cid(pool, tenant, cid)
        except TimeoutError:
            pool.failure = (time.monotonic(), UpstreamError(f"function {fn.spec.name}: a replica did not accept on "
                                                            f"port {fn.spec.port} within {wait:.0f} s"))
            await self._drop_cid(pool, tenant, cid)
        finally:
            pool.starting -= 1
            await pool.notify()

    async def _until_accepting(self, c: Container, fn: Function) -> None:
        link = self.containers.links.get(c.status.node)
        while True:
            try:
                (await link.dial(c.id, fn.spec.port)).close()
                return
            except UpstreamError:  # not listening yet
                await asyncio.sleep(READY_POLL)
            except Conflict:  # exited, or not started: its record says which
                c = self.containers.store.get_container(c.id)
                if c.status.state not in ("created", "running", "restarting"):
                    raise UpstreamError(f"function {fn.spec.name}: its replica exited with code {c.status.exit_code} "
                                        f"before it served HTTP on port {fn.spec.port} ($PORT)") from None
                await asyncio.sleep(READY_POLL)

    def _old_idle(self, pool: Pool) -> list[str]:
        """The idle replicas of older generations, taken out of the pool (for the caller to remove)."""
        old = [r.cid for r in pool.replicas.values() if r.generation != pool.function.generation and r.inflight == 0]
        for cid in old:
            del pool.replicas[cid]
        return old

    async def _drop(self, pool: Pool, tenant: Tenant, replica: Replica) -> None:
        replica.inflight -= 1
        await self._drop_cid(pool, tenant, replica.cid)

    async def _drop_cid(self, pool: Pool, tenant: Tenant, cid: str) -> None:
        if cid:
            pool.replicas.pop(cid, None)
            self._spawn(self._remove(tenant, cid))
        await pool.notify()

    async def _remove(self, tenant: Tenant, cid: str) -> None:
        with contextlib.suppress(NotFound):
            try:
                await self.containers.remove(tenant, cid, force=True)
            except SeaboxError as exc:
                log.warning("could not remove function replica %s: %s (the pool pass tries again)", cid[:12], exc.message)

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # the pool pass --------------------------------------------------------------------------------
    async def converge(self, functions: Iterable[Function], containers: Iterable[Container],
                       last_calls: Mapping[str, float]) -> None:
        """One pass over every http function and every replica container: replicas of functions that are gone,
        of older generations, or no longer running are removed; idle ones beyond --min-warm after
        idle_seconds (since this server last used them and since the function's last call on any server,
        LAST_CALLS: epoch seconds by function id); missing --min-warm ones are started (and waited for)."""
        wanted = {fn.id: fn for fn in functions if fn.spec.mode == "http"}
        for fid in [fid for fid in self._pools if fid not in wanted]:
            del self._pools[fid]
        for c in containers:
            owner = function_of(c)
            if owner is not None and owner[0] not in wanted and c.status.state != "removing":
                log.info("removing replica %s of a function that is gone", c.id[:12])
                await self._remove(self.containers.store.tenant_by_id(c.tenant), c.id)
        starts = []
        for fn in wanted.values():
            pool = self.pool(fn)
            tenant = self.containers.store.tenant_by_id(fn.tenant)
            for cid in self._old_idle(pool):
                await self._remove(tenant, cid)
            await self._forget_stopped(pool, tenant)
            now = time.monotonic()
            called = time.time() - last_calls.get(fn.id, -math.inf)  # seconds since its last call, cluster-wide
            current = sorted(pool.current(), key=lambda r: r.idle_since, reverse=True)  # the most recently used first
            for r in current[fn.spec.min_warm:]:
                if r.inflight == 0 and r.ready and min(now - r.idle_since, called) >= self.cfg.idle_seconds:
                    del pool.replicas[r.cid]
                    await self._remove(tenant, r.cid)
            missing = min(fn.spec.min_warm, self.limit(fn)) - len(pool.current()) - pool.starting
            starts += [self.start_replica(pool, tenant, WARM_START_WAIT) for _ in range(max(0, missing))]
        await asyncio.gather(*starts)

    async def _forget_stopped(self, pool: Pool, tenant: Tenant) -> None:
        """Replicas whose container stopped or went away are removed (a call in flight on one has failed)."""
        for r in list(pool.replicas.values()):
            if not r.ready:
                continue
            try:
                c = self.containers.store.get_container(r.cid)
            except NotFound:
                pool.replicas.pop(r.cid, None)
                continue
            if c.status.state != "running":
                pool.replicas.pop(r.cid, None)
                await self._remove(tenant, r.cid)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
