"""Container operations for a tenant (create, start, stop, remove, wait, ...), and the reports nodes send of them.

Lifecycle requests write desired state (spec.desired, a new spec.generation) and wait for the node's
report of that generation; the node converges and restarts by policy. Streams go over the node link.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal as signals
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

from seabox.billing.accounts import Accounts
from seabox.config import ServerConfig
from seabox.errors import AddressInUse, Conflict, InvalidArgument, NotFound, RuntimeFailure
from seabox.model.container import ACTIVE, Container, ContainerCreate, ContainerSpec, RestartPolicy, StopRequest
from seabox.model.event import ContainerEvent
from seabox.model.healthcheck import Healthcheck
from seabox.model.tenant import Tenant
from seabox.model import ipam
from seabox.model.options import check_options
from seabox.model.ports import PortMapping, check_ports, with_exposed
from seabox.model.quota import Quota
from seabox.model.sizes import get_size
from seabox.model.reference import parse_reference
from seabox.protocol.link import NodeLink
from seabox.protocol.placement import Placement
from seabox.protocol.logs import LogEntry
from seabox.protocol.assignments import ContainerReport
from seabox.protocol.runtime import Stats
from seabox.protocol.streams import AttachStdio, ExecStream
from seabox.services.events import EventBus
from seabox.services.fips import FipService
from seabox.services.images import ImageService
from seabox.services.links import NodeLinks
from seabox.services.placement import Placer
from seabox.services.volumes import VolumeService
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
ADDRESS_TRIES = 8  # addresses tried when other servers take the chosen ones meanwhile
# How long a request waits for the node to act on it (a start may first unpack the image for the tenant).
START_WAIT = 300.0
STOP_GRACE = 60.0  # beyond the stop timeout


def parse_signal(value: str | int) -> signals.Signals:
    """'TERM', 'SIGTERM', '15' or 15 as a signal; anything else is a 400 naming the field."""
    text = str(value).upper()
    try:
        if text.isdigit():
            return signals.Signals(int(text))
        return signals.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise InvalidArgument(f"unknown signal {value!r}", field="signal") from None


class ContainerService:
    """Tenant-scoped container operations; every state change is stored and recorded as an event."""

    def __init__(
        self,
        cfg: ServerConfig,
        store: Store,
        links: NodeLinks,
        placer: Placer,
        bus: EventBus,
        images: ImageService,
        volumes: VolumeService,
        fips: FipService,
        quotas: QuotaStore,
        accounts: Accounts,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.quotas = quotas
        self.accounts = accounts
        self.links = links
        self.placer = placer
        self.bus = bus
        self.images = images
        self.volumes = volumes
        self.fips = fips

    # queries ---------------------------------------------------------------------------
    def list(self, tenant: Tenant, all_: bool = False) -> list[Container]:
        items = self.store.list_containers(tenant.id)
        return items if all_ else [c for c in items if c.status.state in ACTIVE]

    def get(self, tenant: Tenant, ref: str) -> Container:
        return self.store.find_container(tenant.id, ref)

    def get_running(self, tenant: Tenant, ref: str, *, paused: bool = False) -> Container:
        """The container, or a 409 if it is not running (for exec, stats, top, resize); PAUSED: a paused one too."""
        c = self.get(tenant, ref)
        if c.status.state == "paused" and not paused:
            raise Conflict(f"container {c.name} is paused: unpause it first")
        if c.status.state != "running":
            raise Conflict(f"container {c.name} is not running")
        return c

    # create ----------------------------------------------------------------------------
    async def create(self, tenant: Tenant, req: ContainerCreate, spread: Mapping[str, int] | None = None,
                     quota: str = "containers") -> Container:
        """A new container, counted against QUOTA (containers, or function_containers for a function's);
        SPREAD (node -> how many of its group each holds) steers it to the node with fewest."""
        counted = self.cfg.quotas.quota(quota)
        self.quotas.check(tenant.id, counted)  # a 403 or 404 before anything (a volume, say) is made
        self.accounts.check_spend(tenant)  # a 402 past the monthly spend limit, for replicas and cron runs too
        self.store.check_security_groups(tenant.id, req.security_groups)
        resolved = await self.images.resolve(tenant, req.image)
        image, cfg = resolved.info, resolved.info.config
        imported = resolved.pull is None  # the tenant never pulled it: it came in by an import
        node = self._place(tenant, req, resolved.node if imported else None, spread or {})
        name = req.name or self._generate_name(tenant, req.image)
        if self.store.container_name_taken(tenant.id, name):
            raise Conflict(f"container name {name!r} is already in use", field="name")
        entrypoint = req.entrypoint if req.entrypoint is not None else cfg.entrypoint
        cmd = req.cmd if req.cmd else (cfg.cmd if req.entrypoint is None else None)
        args = [*(entrypoint or []), *(cmd or [])]
        if not args:
            raise InvalidArgument("no command given and the image has none", field="cmd")
        env = _merge_env(cfg.env, req.env)
        runtime_class = self.runtime_class(tenant, req.runtime_class)
        check_options(req, runtime_class, get_size(req.size).memory_bytes, self.placer.nodes.get(node).cpus)
        ports = _published(req, cfg.exposed_ports) if req.network == "default" else []
        fip = self.fips.plan(tenant, req.fip) if req.fip is not None else None
        cid = secrets.token_hex(32)
        spec = ContainerSpec(
            image=resolved.name,
            image_ref=req.image,
            image_id=image.id,
            image_imported=imported,
            image_pull=resolved.pull,
            args=args,
            cmd=cmd,
            entrypoint=entrypoint,
            env=env,
            labels=req.labels,
            size=req.size,
            volumes=req.volumes,
            workdir=req.workdir or cfg.working_dir or "/",
            user=req.user if req.user is not None else cfg.user,
            hostname=req.hostname or cid[:12],
            restart=req.restart,
            tty=req.tty,
            stdin_open=req.stdin_open,
            stop_signal=req.stop_signal or cfg.stop_signal or "SIGTERM",
            stop_timeout=req.stop_timeout if req.stop_timeout is not None else DEFAULT_STOP_TIMEOUT,
            runtime_class=runtime_class,
            auto_remove=req.auto_remove,
            cap_drop=req.cap_drop,
            read_only=req.read_only,
            ulimits=req.ulimits,
            pids_limit=req.pids_limit,
            cap_add=req.cap_add,
            seccomp_profile=req.seccomp_profile,
            tmpfs=req.tmpfs,
            init=req.init,
            group_add=req.group_add,
            cpuset_cpus=req.cpuset_cpus,
            memory_swappiness=req.memory_swappiness,
            log=req.log,
            network=req.network,
            healthcheck=_healthcheck(req, cfg.healthcheck),
            ports=ports,
            security_groups=req.security_groups,
        )
        parse_signal(spec.stop_signal)
        made = [m.volume for m in req.volumes if await self.volumes.ensure(tenant, m.volume, node)]
        try:
            container = self._insert(tenant, cid, name, node, spec, counted)
        except BaseException:  # the last container slot taken meanwhile, say: the volumes made for it go too
            for volume in made:
                await self.volumes.remove(tenant, volume)
            raise
        if req.fip is not None:
            try:
                await self.fips.give(tenant, container, fip)
            except BaseException:  # taken meanwhile, or the quota reached by another request: no container either
                self.store.delete_container(cid)
                raise
            container = self.store.get_container(cid)
        await self.bus.emit(tenant.id, "container", "create", cid, name, {"image": spec.image, "size": spec.size})
        return container

    def _insert(self, tenant: Tenant, cid: str, name: str, node: str, spec: ContainerSpec, quota: Quota) -> Container:
        """Record the container at a free address of its tenant's network; another server's create may take
        the address chosen first (each server chooses from what the store holds): then the next one. With
        --network none it has no address."""
        if spec.network == "none":
            return self.store.insert_container(tenant.id, cid, name, node, None, spec, quota=quota)
        subnet = ipam.tenant_subnet(self.cfg.network, tenant.index)
        used = {IPv4Address(a) for a in self.store.used_ips(tenant.id)}
        for _ in range(ADDRESS_TRIES - 1):
            ip = ipam.allocate(subnet, used)
            try:
                return self.store.insert_container(tenant.id, cid, name, node, str(ip), spec, quota=quota)
            except AddressInUse:
                used.add(ip)
        return self.store.insert_container(tenant.id, cid, name, node, str(ipam.allocate(subnet, used)), spec,
                                           quota=quota)

    def runtime_class(self, tenant: Tenant, requested: str | None) -> str:
        """The class a container of tenant runs in: as requested, else the tenant's, else the operator's default."""
        operator = self.cfg.isolation
        allowed = [r for r in operator.allowed_runtimes if tenant.allowed_runtimes is None or r in tenant.allowed_runtimes]
        name = requested or tenant.default_runtime or operator.default_runtime
        if name not in allowed:
            choices = ", ".join(allowed) or "none"
            raise InvalidArgument(
                f"runtime class {name!r} is not allowed for tenant {tenant.name}: use one of {choices}", field="runtime"
            )
        return name

    def _generate_name(self, tenant: Tenant, image: str) -> str:
        base = parse_reference(image).repository.rsplit("/", 1)[-1][:40]
        while True:
            name = f"{base}-{secrets.token_hex(3)}"
            if not self.store.container_name_taken(tenant.id, name):
                return name

    # desired state -----------------------------------------------------------------------
    async def _ask(self, cid: str, desired: str, stop: StopRequest | None = None) -> int:
        """Record what the tenant wants of the container now; returns the generation its node will report."""
        generation = self.store.request_container(cid, desired, stop)
        await self.bus.notify()
        return generation

    async def _acted_on(self, cid: str, generation: int, wait: float) -> Container:
        """The record once its node has reported acting on GENERATION (NotFound once it is gone)."""
        deadline = time.monotonic() + wait
        while True:
            c = self.store.get_container(cid)
            if c.status.generation >= generation:
                return c
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeFailure(f"node {c.status.node} did not act on container {c.name} within {wait:.0f} s")
            await self.bus.wait(min(remaining, 1.0))

    # start / stop ----------------------------------------------------------------------
    async def start(self, tenant: Tenant, ref: str) -> Container:
        c = self.get(tenant, ref)
        if c.status.state == "running":
            return c
        if c.status.state == "paused":
            raise Conflict(f"container {c.name} is paused: unpause it instead")
        generation = await self.ask_start(c)
        c = await self._acted_on(c.id, generation, START_WAIT)
        st = c.status
        if st.error and st.generation == generation and st.state not in ACTIVE:
            if c.spec.auto_remove:  # as Docker: a --rm container that cannot start goes (`docker run --rm` waits for it)
                await self.remove(tenant, c.id)
            if st.error_field:
                raise InvalidArgument(f"cannot start container: {st.error}", field=st.error_field)
            raise RuntimeFailure(st.error)
        return c

    async def ask_start(self, c: Container) -> int:
        """Ask C's node to start it if admission lets it (a 409 otherwise); the generation the node will report."""
        node = c.status.node or ""
        generation = self.store.request_start(c.id, node, lambda placed: self.placer.admit_start(node, c.id, c.spec.size, placed))
        await self.bus.notify()
        return generation

    def _place(self, tenant: Tenant, req: ContainerCreate, import_node: str | None, spread: Mapping[str, int]) -> str:
        """The node for a new container: where its existing volumes are, or where its image was imported
        (IMPORT_NODE: no node can pull it); else the scheduler's choice."""
        held: dict[str, str] = {}
        for mount in req.volumes:
            try:
                held[mount.volume] = self.volumes.get(tenant, mount.volume).node
            except NotFound:
                continue
        if len(set(held.values())) > 1:
            where = ", ".join(f"{v} on {n}" for v, n in sorted(held.items()))
            raise Conflict(f"the volumes are on different nodes ({where}): one container can mount only one node's", field="volumes")
        if held:
            volume, node = next(iter(sorted(held.items())))
            if import_node is not None and node != import_node:
                raise Conflict(f"volume {volume} is on another node than image {req.image}, which was imported "
                               "and is only on its node: push the image to a registry and pull it", field="image")
            return self.placer.choose(tenant.id, req.size, node, pinned_by=f"volume {volume}")
        if import_node is not None:
            return self.placer.choose(tenant.id, req.size, import_node, pinned_by=f"imported image {req.image}")
        return self.placer.choose(tenant.id, req.size, spread=spread)

    async def stop(self, tenant: Tenant, ref: str, timeout: float | None = None, signal: str | None = None) -> Container:
        c = self.get(tenant, ref)
        sig = parse_signal(signal or c.spec.stop_signal)
        grace = c.spec.stop_timeout if timeout is None else timeout
        generation = await self._ask(c.id, "stopped", StopRequest(signal=sig.name, timeout=grace))
        return await self._acted_on(c.id, generation, grace + STOP_GRACE)

    async def kill(self, tenant: Tenant, ref: str, signal: str = "KILL") -> Container:
        """Signal the container; a SIGKILL returns once the record shows it ended (inspect right after says so)."""
        c = self.get(tenant, ref)
        sig = parse_signal(signal)
        if c.status.state not in ("running", "paused"):
            raise Conflict(f"container {c.name} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):  # meant to end it: no restart after
            generation = await self._ask(c.id, "stopped", StopRequest(signal=sig.name))
            c = await self._acted_on(c.id, generation, STOP_GRACE)
            return await self._ended(c) if sig == signals.SIGKILL else c
        await self.links.get(c.status.node).signal(c.id, sig.name)
        return c

    async def _ended(self, c: Container) -> Container:
        """The record once it no longer shows C running (a SIGKILL cannot be ignored), or as it is after STOP_GRACE."""
        deadline = time.monotonic() + STOP_GRACE
        while c.status.state in ACTIVE and time.monotonic() < deadline:
            await self.bus.wait(min(deadline - time.monotonic(), 1.0))
            try:
                c = self.store.get_container(c.id)
            except NotFound:  # removed on its exit (auto-remove)
                return c
        return c

    # pause / unpause -----------------------------------------------------------------------
    async def pause(self, tenant: Tenant, ref: str) -> Container:
        """Freeze the container's processes (cgroup freezer; gVisor: its sandbox); it keeps its size and address."""
        c = self.get(tenant, ref)
        if c.status.state == "paused":
            raise Conflict(f"container {c.name} is already paused")
        if c.status.state != "running":
            raise Conflict(f"container {c.name} is not running")
        return await self._freeze(c, True)

    async def unpause(self, tenant: Tenant, ref: str) -> Container:
        c = self.get(tenant, ref)
        if c.status.state != "paused":
            raise Conflict(f"container {c.name} is not paused")
        return await self._freeze(c, False)

    @asynccontextmanager
    async def paused_while(self, tenant: Tenant, ref: str) -> AsyncIterator[Container]:
        """The container frozen for the block if it is running (docker commit reads its changes so), thawed
        after it even if the block fails; one paused already, or not running, is left as it is."""
        c = self.get(tenant, ref)
        if c.status.state != "running":
            yield c
            return
        c = await self._freeze(c, True)
        try:
            yield c
        finally:
            if self.store.get_container(c.id).status.state == "paused":  # not stopped meanwhile
                await self._freeze(c, False)

    async def _freeze(self, c: Container, paused: bool) -> Container:
        generation = self.store.request_container(c.id, "running", paused=paused)
        await self.bus.notify()
        c = await self._acted_on(c.id, generation, STOP_GRACE)
        if (c.status.state == "paused") != paused:
            raise RuntimeFailure(c.status.error or f"container {c.name} could not be {'paused' if paused else 'unpaused'}")
        return c

    # update --------------------------------------------------------------------------------
    async def update(self, tenant: Tenant, ref: str, size: str | None, restart: RestartPolicy | None) -> Container:
        """A new size (the rules of create: a size that fits its node, the spend limit) or restart policy.

        A stopped container's size applies at its next start; a running or paused one's at once, as its
        node sets the new cgroup limits (runc's, or a gVisor sandbox's)."""
        c = self.get(tenant, ref)
        if restart is not None and c.spec.auto_remove and restart.name != "no":
            raise Conflict("a container removed on exit (--rm) cannot have a restart policy", field="RestartPolicy")
        changes: dict[str, object] = {"restart": restart.model_dump()} if restart is not None else {}
        if size is not None and size != c.spec.size:
            live = c.status.state in ("running", "paused")
            if not live and c.status.state not in ("created", "exited", "dead"):
                raise Conflict(f"container {c.name} is {c.status.state}: change its size once it runs or has "
                               "stopped", field="size")
            self.accounts.check_spend(tenant)
            if live:
                await self._resize(c, size)
            else:
                self.placer.choose(tenant.id, size, c.status.node, pinned_by=f"container {c.name}")
                changes["size"] = size
        if not changes:
            return self.store.get_container(c.id)
        c = self.store.update_container(c.id, changes)
        said = {"size": changes.get("size"), "restart": restart}
        await self.bus.emit(tenant.id, "container", "update", c.id, c.name, {k: str(v) for k, v in said.items() if v})
        return c

    async def _resize(self, c: Container, size: str) -> None:
        """Change the live container C to SIZE if its node has the memory for it now (a 409 otherwise), and
        wait for the node to set the limits; if it cannot (memory in use above the new limit), C keeps its size."""
        node = c.status.node or ""
        generation = self.store.resize_container(
            c.id, node, size, lambda placed: self.placer.admit_start(node, c.id, size, placed))
        await self.bus.notify()
        done = await self._acted_on(c.id, generation, STOP_GRACE)
        if done.status.size == size:
            return
        self.store.resize_container(c.id, node, c.spec.size, lambda placed: None)  # back to what it has
        await self.bus.notify()
        reason = done.status.error or f"it is {done.status.state} now"
        raise Conflict(f"container {c.name} could not change to size {size}: {reason}", field="size")

    # prune ---------------------------------------------------------------------------------
    async def prune(self, tenant: Tenant, keep: Callable[[Container], bool]) -> tuple[list[Container], int]:
        """Remove every stopped container of the tenant that KEEP does not hold back; the ones removed, and the
        bytes of their writable layers (measured by their nodes just before; 0 for one whose node is down)."""
        removed, reclaimed = [], 0
        for c in self.list(tenant, all_=True):
            if c.status.state in ("created", "exited", "dead") and not keep(c):
                node = c.status.node or ""
                layer = 0 if self.placer.is_down(node) else await self.links.get(node).layer_size(c.id)
                try:
                    await self.remove(tenant, c.id)
                except NotFound:  # removed meanwhile
                    continue
                removed.append(c)
                reclaimed += layer
        return removed, reclaimed

    async def restart(self, tenant: Tenant, ref: str, timeout: float | None = None) -> Container:
        await self.stop(tenant, ref, timeout)
        return await self.start(tenant, ref)

    # remove ------------------------------------------------------------------------------
    async def remove(self, tenant: Tenant, ref: str, force: bool = False) -> None:
        c = self.get(tenant, ref)
        if c.status.state in ACTIVE and not force:
            raise Conflict(f"container {c.name} is {c.status.state}: stop it first, or remove it with force")
        generation = await self.ask_remove(c)
        if generation is None:
            return
        try:
            await self._acted_on(c.id, generation, STOP_GRACE)
        except NotFound:  # gone: its image goes too if nothing else needs it, before this call returns
            await self.images.release(c.spec.image_id)

    async def ask_remove(self, c: Container) -> int | None:
        """Ask C's node to remove it (stopping it first); the generation it will report, None if it is gone already."""
        if self.placer.is_down(c.status.node):  # nobody to ask: the node removes it when it is back
            await self._gone(c, [ContainerEvent(action="destroy", attributes={"image": c.spec.image})])
            return None
        c.status.state = "removing"
        self.store.save_status(c.id, c.status)
        return await self._ask(c.id, "removed")

    async def rename(self, tenant: Tenant, ref: str, name: str) -> Container:
        c = self.get(tenant, ref)
        checked = ContainerCreate(image="x", name=name).name or name
        if checked != c.name and self.store.container_name_taken(tenant.id, checked):  # a service's name too
            raise Conflict(f"container name {checked!r} is already in use", field="name")
        self.store.rename_container(c.id, tenant.id, checked)
        await self.bus.emit(tenant.id, "container", "rename", c.id, checked, {"oldName": c.name})
        return self.store.get_container(c.id)

    # wait ----------------------------------------------------------------------------------
    async def wait(self, tenant: Tenant, ref: str, condition: str = "not-running") -> Container:
        """Block until the container is no longer running (or, for 'removed', gone)."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"wait condition must be not-running, next-exit or removed, got {condition!r}", field="condition")
        c = self.get(tenant, ref)
        last = c
        started = c.status.started_at
        while True:
            try:
                cur = self.store.get_container(c.id)
            except NotFound:  # removed (maybe by its node, right after the exit): the exit is in its die event
                code = self.store.last_exit_code(c.id)
                if code is not None and last.status.state in ACTIVE:
                    last.status.state, last.status.exit_code = "exited", code
                return last
            last = cur
            if condition == "not-running" and cur.status.state not in ACTIVE and cur.status.state != "removing":
                return cur
            if condition == "next-exit" and cur.status.state not in ACTIVE and cur.status.started_at != started:
                return cur
            await self.bus.wait(1.0)

    # logs and exec ---------------------------------------------------------------------------
    def logs(
        self, tenant: Tenant, ref: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
        until: float | None = None,
    ) -> AsyncIterator[LogEntry]:
        """The container's output lines (up to UNTIL, seconds since the epoch); with follow, new lines until
        the container stops or UNTIL has passed."""
        c = self.get(tenant, ref)
        since_at = datetime.fromtimestamp(since, UTC) if since else None
        until_at = datetime.fromtimestamp(until, UTC) if until else None
        follow = follow and c.status.state in ACTIVE
        return self.links.get(c.status.node).logs(c.id, follow=follow, tail=tail, since=since_at,
                                                  until_stopped=lambda: self._stopped(c.id), until=until_at)

    async def _stopped(self, cid: str) -> None:
        while True:
            try:
                if self.store.get_container(cid).status.state not in ACTIVE:
                    return
            except NotFound:
                return
            await self.bus.wait(1.0)

    async def exec(
        self,
        tenant: Tenant,
        ref: str,
        cmd: list[str],
        env: list[str] | None = None,
        workdir: str | None = None,
        user: str = "",
        *,
        tty: bool = False,
        stdin: bool = False,
    ) -> ExecStream:
        c = self.get_running(tenant, ref)
        return await self.links.get(c.status.node).exec(
            c.id, cmd, env=env or [], cwd=workdir, user=user, tty=tty, stdin=stdin
        )

    def attach(self, tenant: Tenant, ref: str) -> asyncio.Future[AttachStdio]:
        """The container's live stdio: now if it runs, else as soon as it starts (before its process runs)."""
        c = self.get(tenant, ref)
        return asyncio.ensure_future(self.links.get(c.status.node).attach(c.id, running=c.status.state == "running"))

    async def resize(self, tenant: Tenant, ref: str, height: int, width: int) -> None:
        c = self.get_running(tenant, ref)
        await self.links.get(c.status.node).resize(c.id, height, width)

    async def stats(self, tenant: Tenant, ref: str) -> Stats:
        c = self.get_running(tenant, ref, paused=True)
        return await self.links.get(c.status.node).stats(c.id)

    async def top(self, tenant: Tenant, ref: str) -> list[tuple[int, str]]:
        c = self.get_running(tenant, ref, paused=True)
        return await self.links.get(c.status.node).top(c.id)

    # files -----------------------------------------------------------------------------------
    def files(self, tenant: Tenant, ref: str) -> tuple[Container, NodeLink, Placement]:
        """The container, the node that holds its rootfs, and what that node needs to mount it."""
        c = self.get(tenant, ref)
        if not c.status.node:
            raise Conflict(f"container {c.name} is not placed on a node yet")
        return c, self.links.get(c.status.node), Placement(c, tenant.id, tenant.index)

    async def _gone(self, c: Container, events: list[ContainerEvent]) -> None:
        """Delete the record with the events of its end; its image goes too if nothing else needs it."""
        self.store.delete_container(c.id, events)
        await self.bus.notify()
        await self.images.release(c.spec.image_id)

    # what nodes report -------------------------------------------------------------------------
    async def apply_report(self, node: str, r: ContainerReport) -> None:
        """Fold one node report into the record; its lifecycle events go in the same transaction."""
        try:
            c = self.store.get_container(r.id)
        except NotFound:
            return
        if c.status.node != node:  # a node that no longer holds it
            return
        old, st = c.status, c.status.model_copy()
        st.generation = max(old.generation, r.generation)
        exited = r.finished_at is not None and r.finished_at != old.finished_at
        events = []
        if exited:
            at = r.finished_at.timestamp()  # type: ignore[union-attr]
            if r.oom_killed:
                events.append(ContainerEvent(action="oom", at=at))
            events.append(ContainerEvent(action="die", attributes={"exitCode": str(r.exit_code)}, at=at))
        if r.state == "removed":
            if old.state in ACTIVE and not exited:
                events.append(ContainerEvent(action="die", attributes={"exitCode": str(r.exit_code or 137)}))
            events.append(ContainerEvent(action="destroy", attributes={"image": c.spec.image}))
            await self._gone(c, events)
            return
        if r.state in ("running", "paused"):
            if r.started_at is not None and r.started_at != old.started_at:
                st.started_at, st.finished_at = r.started_at, None
                st.exit_code, st.oom_killed, st.error = 0, False, ""
                events.append(ContainerEvent(action="start", attributes={"image": c.spec.image, "size": c.spec.size},
                                             at=r.started_at.timestamp()))  # the node's clock: billed from then
            elif {old.state, r.state} == {"running", "paused"}:
                events.append(ContainerEvent(action="pause" if r.state == "paused" else "unpause",
                                             attributes={"image": c.spec.image}))
            st.state, st.pid = r.state, r.pid or old.pid
            if r.size is not None or r.error:  # the limits it has now, and why not its spec's if it could not
                st.size, st.error = r.size or old.size, r.error
        elif r.failure:  # the start failed: the record keeps the reason
            st.state = "exited" if old.started_at else "created"
            st.error, st.error_field, st.exit_code, st.pid = r.error, r.field, r.exit_code, 0
        elif r.state in ("exited", "restarting"):
            st.state, st.pid = r.state, 0
            if exited:
                st.exit_code, st.oom_killed, st.finished_at = r.exit_code, r.oom_killed, r.finished_at
        st.restart_count = r.restart_count if r.state != "created" or r.failure else old.restart_count
        st.healthy = r.healthy if st.state in ("running", "paused") else None
        st.health = r.health if st.state in ("running", "paused") else None
        status = st.health.status if st.health is not None else "starting"
        if status != "starting" and (old.health is None or old.health.status != status):
            events.append(ContainerEvent(action=f"health_status: {status}", attributes={"image": c.spec.image}))
        if st != old or events:
            self.store.save_status(c.id, st, events)
            await self.bus.notify()


def _published(req: ContainerCreate, exposed: list[str]) -> list[PortMapping]:
    """The ports REQ publishes: its own, and with publish_all every port the image EXPOSEd (400 naming ports)."""
    if not req.publish_all:
        return req.ports
    try:
        return check_ports(with_exposed(req.ports, exposed))
    except ValueError as exc:
        raise InvalidArgument(f"ports: {exc}", field="ports") from None


def _healthcheck(req: ContainerCreate, image: dict[str, Any] | None) -> Healthcheck | None:
    """The request's healthcheck with what it leaves unset taken from the image's HEALTHCHECK (Docker's merge)."""
    try:
        from_image = Healthcheck.from_docker(image, "image Healthcheck")
    except InvalidArgument as exc:
        raise InvalidArgument(f"the image's HEALTHCHECK is invalid: {exc.message}", field="image") from None
    if req.healthcheck is None:
        return from_image
    return req.healthcheck.merged(from_image)


def _merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    """The image's environment with the overrides; a bare KEY stays bare (the node leaves KEY unset), as Docker."""
    merged: dict[str, str | None] = {}
    for item in [*image_env, *overrides]:
        key, sep, value = item.partition("=")
        merged[key] = value if sep else None
    merged.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return [k if v is None else f"{k}={v}" for k, v in merged.items()]
