"""Drives this node's containers to the assignments the control plane hands it, and reports what is true.

Level-triggered: every batch holds everything the node is to run. Each container converges on its
own (one at a time per container); the node restarts containers by their restart policy with
back-off, removes containers it holds but was not assigned, and reports every change it sees,
tagged with the spec generation it acted on. What a container has applied is kept in its bundle,
so an agent killed at any moment picks up where it was.

Fencing (opt-in, `[nodes] fence_after`): a node that has not reached the control plane for that long
stops the containers the control plane re-places elsewhere when a node is down (movable ones), so
that a partitioned node and the node given its containers do not both run them. Once it reaches the
control plane again, those still assigned to it run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from seabox.errors import InvalidArgument, RuntimeFailure, SeaboxError
from seabox.model.container import Container, ContainerStatus, movable
from seabox.model.healthcheck import Healthcheck
from seabox.node import health, healthcheck
from seabox.node.agent import NodeAgent
from seabox.node.network.lb_rules import Target
from seabox.node.network.manager import Exposure, Service
from seabox.protocol.assignments import Assignment, AssignmentBatch, ContainerReport
from seabox.protocol.balancing import BalancedService
from seabox.protocol.link import ControlPlane
from seabox.protocol.placement import Placement
from seabox.protocol.runtime import ExitStatus

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 10.0
WATCH_TIMEOUT = 30.0
RETRY_DELAY = 1.0
STOPPED_POLL = 0.25
ADOPTION_WAIT = 10.0  # how long the first batch may hold up readiness while running containers are adopted
FENCE_POLL = 0.5
LEASTCONN_PERIOD = 0.5  # how often leastconn services re-read their backends' open connections
_APPLIED = "applied.json"  # bundle file: the generation acted on and the restarts since the last start
_LIVE = ("running", "paused", "created")


def _now() -> datetime:
    return datetime.now(UTC)


def restart_delay(restart_count: int) -> float:
    """Seconds before restart number restart_count (1, 2, ...): 0.1 s doubling, at most 10 s."""
    return min(0.1 * 2 ** (restart_count - 1), RESTART_BACKOFF_MAX)


def _wants_restart(a: Assignment, status: ExitStatus, restarts: int, fenced: bool = False) -> bool:
    policy = a.spec.restart
    if a.spec.desired != "running" or fenced:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    return (
        policy.name == "on-failure"
        and status.code != 0
        and (policy.max_retries == 0 or restarts < policy.max_retries)
    )


class Converger:
    """One per node agent: watches assignments, converges containers, reports."""

    def __init__(self, agent: NodeAgent, plane: ControlPlane, *, fence_after: float = 0.0) -> None:
        self.agent = agent
        self.plane = plane
        self.fence_after = fence_after  # 0: never fence
        self._contact = time.monotonic()  # when the control plane last answered
        self._fenced: set[str] = set()  # containers stopped while the control plane was out of reach
        self._assigned: dict[str, Assignment] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # converging work in flight
        self._restarts: dict[str, asyncio.Task[None]] = {}  # restarts waiting out their back-off
        self._reported: dict[str, ContainerReport] = {}
        self._unsent: list[ContainerReport] = []  # reports the control plane has not taken yet, oldest first
        self._seen_first = False
        self._overlays: tuple[str | None, dict[int, list[str]]] = (None, {})
        self._exposures: dict[str, Exposure] | None = None
        self._services: tuple[Service, ...] | None = None
        self._rebalancer: asyncio.Task[None] | None = None  # while a leastconn service is here
        self.prober = health.Prober(self._health_changed)
        self.checker = healthcheck.Checker(self._probed, self._run_check)
        agent.on_exit = self._on_exit

    # the watch loop -----------------------------------------------------------------------
    async def heartbeats(self, interval: float) -> None:
        """Tell the control plane every INTERVAL seconds that this node is alive, and what it has."""
        while True:
            try:
                await self.plane.heartbeat(self.agent.name, self.agent.capacity())
                self._contact = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(interval)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Watch assignments until cancelled; READY is set once the first batch has been applied."""
        etag = ""
        while True:
            try:
                batch = await self.plane.assignments(self.agent.name, etag, WATCH_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching assignments failed; retrying")
                await asyncio.sleep(RETRY_DELAY)
                continue
            await self._resend()
            if batch.etag != etag or not self._seen_first:
                etag = batch.etag
                work = await self.apply(batch)
                if ready is not None and not ready.is_set() and work:
                    await asyncio.wait(work, timeout=ADOPTION_WAIT)
            self._reached()
            if ready is not None:
                ready.set()

    # fencing ------------------------------------------------------------------------------
    async def fence(self) -> None:
        """Stop the movable containers once the control plane has been out of reach for fence_after seconds."""
        while self.fence_after:
            await asyncio.sleep(FENCE_POLL)
            if time.monotonic() - self._contact < self.fence_after:
                continue
            for a in list(self._assigned.values()):
                if a.id not in self._fenced and a.spec.desired == "running" and movable(a.spec):
                    log.warning("fencing %s: the control plane is out of reach since %.0f s, and it runs "
                                "such a container elsewhere once this node is down", a.id[:12], self.fence_after)
                    self._fenced.add(a.id)
                    self._cancel_restart(a.id)
                    self._schedule(a.id, self._fence_one(a.id))

    async def _fence_one(self, cid: str) -> None:
        if await self.agent.state(cid) in ("running", "paused"):
            self.agent.watch(cid)  # its exit is reported (once the control plane answers again)
            await self.agent.stop(cid, 0, "KILL")

    def _reached(self) -> None:
        """Assignments came and were applied: a fence is lifted, and what it stopped that is still ours
        runs again (what the control plane moved meanwhile was gone from the batch, and is removed)."""
        self._contact = time.monotonic()
        fenced, self._fenced = self._fenced, set()
        for cid in sorted(fenced):
            a = self._assigned.get(cid)
            if a is not None and a.spec.desired == "running":
                self._schedule(cid, self._restart(cid, self._applied(cid)[1]))

    async def apply(self, batch: AssignmentBatch) -> list[asyncio.Task[None]]:
        """Converge to BATCH: hosts files, overlays, tenant resolvers, then each container whose assignment
        changed, then orphans.

        Returns the work started (it runs on; each container's in order).
        """
        first = not self._seen_first
        self._seen_first = True
        for index, entries in batch.hosts.items():
            self.agent.write_hosts(index, entries)
        overlays = (batch.underlay, batch.peers)
        if batch.underlay is not None and (first or overlays != self._overlays):
            peers = {index: [IPv4Address(ip) for ip in ips] for index, ips in batch.peers.items()}
            await asyncio.to_thread(self.agent.network.reconcile_overlays, IPv4Address(batch.underlay), peers)
        self._overlays = overlays
        assigned = {a.id: a for a in batch.containers}
        gone = [cid for cid in self._assigned if cid not in assigned]
        changed = [a for a in batch.containers if first or self._changed(a)]
        self._assigned = assigned
        # before the first reconcile re-applies the table: a restarted agent's table never lacks the
        # firewalls, FIPs and services the previous one had in place
        services = self._desired_services(batch)
        if first:
            await self.agent.balance(services, apply=False)
        await self._expose(batch)
        await self._balance(services)
        if first:
            await self.agent.reconcile_network({a.tenant_index for a in assigned.values()}, set(assigned))
            gone = [cid for cid in self.agent.local_containers() if cid not in assigned]
        await self.agent.serve_dns(batch.hosts)  # after the first reconcile: it keeps these tenants' bridges
        work = []
        for cid in gone:
            self._cancel_restart(cid)
            work.append(self._schedule(cid, self._remove_orphan(cid)))
        for a in changed:
            work.append(self._schedule(a.id, self._converge(a.id, adopting=first)))
        for a in batch.containers:  # called lost while this node was out of reach: say what is true
            if a.lost and a not in changed:
                work.append(self._schedule(a.id, self._converge(a.id, adopting=True)))
        for a in batch.containers:
            await self._sync_health(a)
        return work

    async def _expose(self, batch: AssignmentBatch) -> None:
        """FIPs, published ports and firewalls as the batch has them, before any container is touched."""
        exposures = {
            a.id: Exposure(IPv4Address(a.ip), IPv4Address(a.fip) if a.fip else None, tuple(a.spec.ports), a.firewall)
            for a in batch.containers
            if a.ip is not None and a.spec.desired != "removed"
        }
        if exposures != self._exposures:
            await self.agent.expose(exposures)
            self._exposures = exposures

    def _desired_services(self, batch: AssignmentBatch) -> tuple[Service, ...]:
        services = []
        for s in batch.services:
            try:
                services.append(_service(s, self._assigned))
            except ValueError as exc:
                log.error("service %s is not served: %s", s.id, exc)
        return tuple(services)

    async def _balance(self, desired: tuple[Service, ...]) -> None:
        """The load-balanced services as the batch has them (before any container is touched, as _expose)."""
        if desired != self._services:
            await self.agent.balance(desired)
            self._services = desired
        leastconn = any(s.algorithm == "leastconn" and len(s.backends) > 1 for s in desired)
        if leastconn and self._rebalancer is None:
            self._rebalancer = asyncio.create_task(self._rebalance(), name="leastconn")
        elif not leastconn and self._rebalancer is not None:
            self._rebalancer.cancel()
            self._rebalancer = None

    async def _rebalance(self) -> None:
        """Leastconn: every LEASTCONN_PERIOD, the maps keep only each service's least-loaded backends."""
        while True:
            try:
                await asyncio.to_thread(self.agent.network.rebalance)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leastconn rebalancing failed")
            await asyncio.sleep(LEASTCONN_PERIOD)

    # health checks ---------------------------------------------------------------------------
    def _health_target(self, cid: str) -> health.Target | None:
        a = self._assigned.get(cid)
        if a is None or a.health is None or a.ip is None:
            return None
        return health.Target(IPv4Address(a.ip), a.health)

    def _healthy(self, report: ContainerReport) -> ContainerReport:
        """The report with the container's current health: probed while it runs, None otherwise."""
        target = self._health_target(report.id) if report.state == "running" else None
        if target is None:
            self.prober.forget(report.id)
        else:
            self.prober.watch(report.id, target)
        a = self._assigned.get(report.id)
        check = a.spec.healthcheck if a is not None and report.state == "running" else None
        if check is None or not check.enabled:
            self.checker.forget(report.id)
        else:
            self.checker.watch(report.id, check)
        return report.model_copy(update={"healthy": self.prober.healthy(report.id),
                                         "health": self.checker.health(report.id)})

    async def _sync_health(self, a: Assignment) -> None:
        """A running container whose health check came, went or changed: probed as it says now."""
        last = self._reported.get(a.id)
        if last is None or last.state != "running":
            return
        now = self._healthy(last)
        if now.healthy != last.healthy or now.health != last.health:
            await self._report(last)

    async def _health_changed(self, cid: str, healthy: bool) -> None:
        last = self._reported.get(cid)
        if last is not None and last.state == "running" and last.healthy != healthy:
            await self._report(last)  # with the health the prober has now

    async def _probed(self, cid: str) -> None:
        last = self._reported.get(cid)
        if last is not None and last.state == "running":
            await self._report(last)  # with the health the checker has now

    async def _run_check(self, cid: str, check: Healthcheck) -> tuple[int, str]:
        return await healthcheck.run_probe(self.agent.exec, cid, check)

    def _changed(self, a: Assignment) -> bool:
        old = self._assigned.get(a.id)
        return old is None or old.spec != a.spec or old.ip != a.ip or old.name != a.name

    def _schedule(self, cid: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run WORK for the container after what is already running for it (one at a time per container)."""
        lock = self._locks.setdefault(cid, asyncio.Lock())

        async def serialized() -> None:
            async with lock:
                await work

        task = asyncio.create_task(serialized(), name=f"converge-{cid[:12]}")
        self._tasks.add(task)
        task.add_done_callback(lambda t, cid=cid: self._done(cid, t))
        return task

    def _done(self, cid: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("converging %s failed", cid[:12], exc_info=task.exception())

    # one container ------------------------------------------------------------------------
    def _applied(self, cid: str) -> tuple[int, int]:
        """The generation this node last acted on for the container, and its restarts since (0, 0 if none)."""
        try:
            data = json.loads((self.agent.bundle(cid) / _APPLIED).read_text())
            return int(data["generation"]), int(data["restarts"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0, 0

    def _record(self, cid: str, generation: int, restarts: int) -> None:
        path: Path = self.agent.bundle(cid) / _APPLIED
        if path.parent.is_dir():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"generation": generation, "restarts": restarts}))
            tmp.replace(path)

    async def _converge(self, cid: str, adopting: bool) -> None:
        """Act on the container's assignment if it asks for something new (or, ADOPTING, recheck it)."""
        a = self._assigned.get(cid)
        if a is None:
            return
        applied, restarts = self._applied(cid)
        generation = a.spec.generation
        state = await self.agent.state(cid)
        live = state in ("running", "paused")
        if a.spec.desired == "removed":
            await self._remove(a, state)
            return
        fresh = generation > applied
        if not fresh and not adopting:
            return
        self._cancel_restart(cid)  # asked for something new: a pending restart is moot
        if a.spec.desired == "running" and fresh and not live:
            await self._start(a, generation, 0)
            return
        if a.spec.desired == "stopped" and a.spec.stop is not None and (fresh or live):
            self._record(cid, generation, restarts)
            await self._stop(a, state)
            return
        self._record(cid, generation, restarts)
        if live:  # started before the agent last went away, or asked to run (or to pause or thaw) and running
            self.agent.watch(cid)
            state = await self._freeze(a, state)
            size, error = await self.agent.apply_size(cid, a.spec)  # docker update --memory/--cpus, live
            pid = await self.agent.pid(cid)  # a record that lost it (a report while the agent was away) gets it back
            await self._report(ContainerReport(id=cid, generation=generation, state=state, pid=pid,
                                               restart_count=restarts, size=size, error=error))
            return
        status = self.agent.exit_status(cid)
        if status is None and a.spec.desired != "running":
            await self._report(ContainerReport(id=cid, generation=generation, state="created"))
            return
        # it ended while no agent watched it (or the host lost it: then at an unknown time)
        await self._exited(a, status or ExitStatus(255, _now(), False), restarts)

    async def _freeze(self, a: Assignment, state: str) -> Literal["running", "paused"]:
        """Pause or thaw the live container as its assignment asks; the state it is in after."""
        want: Literal["running", "paused"] = "paused" if a.spec.paused else "running"
        if state != want:
            try:
                await (self.agent.pause(a.id) if want == "paused" else self.agent.resume(a.id))
            except SeaboxError as exc:
                log.warning("%s of %s failed: %s", "pause" if want == "paused" else "resume", a.id[:12], exc)
                return "paused" if state == "paused" else "running"
        return want

    async def _start(self, a: Assignment, generation: int, restarts: int) -> None:
        placement = Placement(_container(a), a.tenant_id, a.tenant_index)
        try:
            pid = await self.agent.start(placement)
        except (RuntimeFailure, InvalidArgument) as exc:  # InvalidArgument: e.g. a --group-add the image lacks
            self._record(a.id, generation, restarts)
            missing = "not found" in exc.message or "no such file" in exc.message
            if isinstance(exc, InvalidArgument):
                field = exc.field or "spec"
            else:
                field = "cmd" if missing else ""
            await self._report(
                ContainerReport(
                    id=a.id,
                    generation=generation,
                    state="created",
                    exit_code=127 if missing else 128,
                    error=exc.message,
                    failure="command" if field else "runtime",
                    field=field,
                    restart_count=restarts,
                )
            )
            return
        self._record(a.id, generation, restarts)
        await self._report(
            ContainerReport(id=a.id, generation=generation, state="running", pid=pid, started_at=_now(),
                            restart_count=restarts, size=a.spec.size)
        )

    async def _stop(self, a: Assignment, state: str | None) -> None:
        stop = a.spec.stop
        assert stop is not None
        if state in ("running", "paused"):
            self.agent.watch(a.id)  # adopted by this agent just now, perhaps: its exit is what gets reported
        if state in ("running", "paused", "created") and stop.timeout is None:
            try:
                await self.agent.kill(a.id, stop.signal)
            except Exception as exc:  # gone meanwhile: its exit is reported by the watcher
                log.info("kill of %s: %s", a.id[:12], exc)
            await self._report(ContainerReport(id=a.id, generation=a.spec.generation, state="running",
                                               restart_count=self._applied(a.id)[1]))
            return
        if state in ("running", "paused"):
            await self.agent.stop(a.id, stop.timeout or 0, stop.signal)  # the watcher reports the exit
            return
        if state == "created":  # made by a start that never finished: nothing watches it
            await self.agent.stop(a.id, 0, "KILL")
        status = self.agent.exit_status(a.id)
        last = self._reported.get(a.id)
        if last is not None and last.state == "restarting":  # a restart was pending: now it is not
            await self._report(last.model_copy(update={"state": "exited", "generation": a.spec.generation}))
        elif status is not None:
            await self._report(self._exit_report(a, status, self._applied(a.id)[1]))
        else:  # never started
            await self._report(ContainerReport(id=a.id, generation=a.spec.generation, state="created"))

    async def _remove(self, a: Assignment, state: str | None) -> None:
        was_running = state in ("running", "paused")
        await self.agent.remove(a.id)
        await self._report(
            ContainerReport(id=a.id, generation=a.spec.generation, state="removed",
                            exit_code=137 if was_running else 0, finished_at=_now() if was_running else None)
        )
        self._forget(a.id)

    async def _remove_orphan(self, cid: str) -> None:
        """A container this node holds that no longer is (or never was) assigned to it."""
        log.info("removing %s: not assigned to this node", cid[:12])
        await self.agent.remove(cid)
        self._forget(cid)

    def _forget(self, cid: str) -> None:
        self._assigned.pop(cid, None)  # gone from here: its absence from the next batch is no orphan
        self._reported.pop(cid, None)
        self._locks.pop(cid, None)
        self.prober.forget(cid)
        self.checker.forget(cid)

    # exits and restarts ---------------------------------------------------------------------
    async def _on_exit(self, cid: str, status: ExitStatus) -> None:
        a = self._assigned.get(cid)
        if a is None:
            return
        self._schedule(cid, self._exited(a, status, self._applied(cid)[1]))

    def _exit_report(self, a: Assignment, status: ExitStatus, restarts: int) -> ContainerReport:
        last = self._reported.get(a.id)
        return ContainerReport(
            id=a.id,
            generation=self._applied(a.id)[0],
            state="exited",
            exit_code=status.code,
            oom_killed=status.oom_killed,
            started_at=last.started_at if last is not None else None,
            finished_at=status.finished_at,
            restart_count=restarts,
        )

    async def _exited(self, a: Assignment, status: ExitStatus, restarts: int) -> None:
        a = self._assigned.get(a.id, a)
        if a.spec.desired == "removed":
            return
        report = self._exit_report(a, status, restarts)
        if _wants_restart(a, status, restarts, a.id in self._fenced):
            restarts += 1
            self._record(a.id, self._applied(a.id)[0], restarts)
            await self._report(report.model_copy(update={"state": "restarting", "restart_count": restarts}))
            self._restarts[a.id] = asyncio.create_task(self._restart_later(a.id, restarts))
            return
        if a.spec.auto_remove:
            await self.agent.remove(a.id)
            await self._report(report.model_copy(update={"state": "removed"}))
            self._forget(a.id)
            return
        await self._report(report)

    async def _restart_later(self, cid: str, restarts: int) -> None:
        await asyncio.sleep(restart_delay(restarts))
        self._restarts.pop(cid, None)
        self._schedule(cid, self._restart(cid, restarts))

    async def _restart(self, cid: str, restarts: int) -> None:
        a = self._assigned.get(cid)
        if a is None or a.spec.desired != "running" or await self.agent.state(cid) in ("running", "paused"):
            return
        await self._start(a, self._applied(cid)[0], restarts)

    def _cancel_restart(self, cid: str) -> None:
        task = self._restarts.pop(cid, None)
        if task is not None:
            task.cancel()

    async def _report(self, report: ContainerReport) -> None:
        report = self._healthy(report)
        self._reported[report.id] = report
        try:
            await self.plane.report(self.agent.name, [*self._unsent, report])
            self._unsent.clear()
        except Exception as exc:  # sent again with the next report, or once the control plane answers again
            log.warning("reporting %s failed (kept to send again): %s", report.id[:12], exc)
            self._unsent.append(report)

    async def _resend(self) -> None:
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            try:
                await self.plane.report(self.agent.name, unsent)
            except Exception:
                self._unsent = unsent + self._unsent

    async def stopped(self, cid: str) -> None:
        """Return once the container has stopped for good: not running, and no restart pending."""
        while True:
            if (
                await self.agent.state(cid) not in ("running", "paused")
                and cid not in self._restarts
                and not self._busy(cid)
            ):
                return
            await asyncio.sleep(STOPPED_POLL)

    def _busy(self, cid: str) -> bool:
        lock = self._locks.get(cid)
        return lock is not None and lock.locked()

    async def close(self) -> None:
        await self.prober.close()
        await self.checker.close()
        tasks = [*self._tasks, *self._restarts.values(), *([self._rebalancer] if self._rebalancer else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.agent.close()


def _service(s: BalancedService, assigned: dict[str, Assignment]) -> Service:
    """A service as the node network serves it; local are the backends on this node (its FIP reaches the others
    from its SNAT address)."""
    backends = tuple(Target(IPv4Address(b.ip), b.port) for b in s.backends)
    local = tuple(t for t, b in zip(backends, s.backends, strict=True) if b.container_id in assigned)
    fip = IPv4Address(s.fip) if s.fip else None
    snat = IPv4Address(s.snat_ip) if s.snat_ip else None
    return Service(s.id, s.tenant_index, IPv4Address(s.vip), s.port, s.algorithm, backends, fip, local, snat,
                   s.firewall)


def _container(a: Assignment) -> Container:
    """The record the agent starts from: the assignment, with the address it carries."""
    return Container(
        id=a.id,
        name=a.name,
        tenant=a.tenant_id,
        created_at=_now(),
        spec=a.spec,
        status=ContainerStatus(ip=a.ip),
    )
