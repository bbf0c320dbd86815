"""Container operations for a tenant (create, start, stop, remove, wait, ...) and the exit/restart controller."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal as signals
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from ipaddress import IPv4Address

from seabox.config import ServerConfig
from seabox.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from seabox.model.container import Container, ContainerCreate, ContainerSpec
from seabox.model.node import NodeCapacity
from seabox.model.sizes import SIZES
from seabox.model.tenant import Tenant
from seabox.node.agent import NodeAgent, Placement
from seabox.node.images.reference import parse_reference
from seabox.node.network import ipam
from seabox.node.runtime.attach import AttachStream
from seabox.node.runtime.base import ExitStatus
from seabox.node.runtime.exec import ExecProcess
from seabox.node.runtime.logs import LogEntry, follow_log, read_log
from seabox.scheduler.admission import refusal
from seabox.services.events import EventBus
from seabox.services.images import ImageService
from seabox.services.volumes import VolumeService
from seabox.store.repo import Store

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
RESTART_BACKOFF_MAX = 10.0
ACTIVE = ("running", "restarting")


def _now() -> datetime:
    return datetime.now(UTC)


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
        agent: NodeAgent,
        bus: EventBus,
        images: ImageService,
        volumes: VolumeService,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.agent = agent
        self.bus = bus
        self.images = images
        self.volumes = volumes
        self._restarts: dict[str, asyncio.Task[None]] = {}
        self._starting: set[str] = set()  # admitted, not yet running: their memory counts as allocated
        agent.on_exit = self.on_exit

    # queries ---------------------------------------------------------------------------
    def list(self, tenant: Tenant, all_: bool = False) -> list[Container]:
        items = self.store.list_containers(tenant.id)
        return items if all_ else [c for c in items if c.status.state in ACTIVE]

    def get(self, tenant: Tenant, ref: str) -> Container:
        return self.store.find_container(tenant.id, ref)

    def get_running(self, tenant: Tenant, ref: str) -> Container:
        """The container, or a 409 if it is not running (for exec, stats, top, resize)."""
        c = self.get(tenant, ref)
        if c.status.state != "running":
            raise Conflict(f"container {c.name} is not running")
        return c

    # create ----------------------------------------------------------------------------
    async def create(self, tenant: Tenant, req: ContainerCreate) -> Container:
        self._admit(req.size)
        resolved = self.images.resolve(tenant, req.image)
        image, cfg = resolved.info, resolved.info.config
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
        for mount in req.volumes:
            await self.volumes.ensure(tenant, mount.volume)
        cid = secrets.token_hex(32)
        subnet = ipam.tenant_subnet(self.cfg.network, tenant.index)
        ip = ipam.allocate(subnet, {IPv4Address(a) for a in self.store.used_ips(tenant.id)})
        spec = ContainerSpec(
            image=resolved.name,
            image_id=image.id,
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
        )
        parse_signal(spec.stop_signal)
        container = self.store.insert_container(tenant.id, cid, name, self.agent.name, str(ip), spec)
        await self.bus.emit(tenant.id, "container", "create", cid, name, {"image": spec.image, "size": spec.size})
        self._refresh_hosts(tenant)
        return container

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

    # start / stop ----------------------------------------------------------------------
    async def start(self, tenant: Tenant, ref: str) -> Container:
        c = self.get(tenant, ref)
        if c.status.state == "running":
            return c
        self._admit(c.spec.size, starting=c.id)
        c.spec.desired = "running"
        self.store.save_spec(c.id, c.spec)
        self._starting.add(c.id)
        try:
            return await self._run(tenant, c)
        finally:
            self._starting.discard(c.id)

    def _admit(self, size: str, starting: str | None = None) -> None:
        """409 if this node can never hold SIZE or, when STARTING a container, has too little memory free now."""
        policy = self.cfg.admission
        measured = self.agent.capacity()
        node = NodeCapacity(measured.name, policy.node_memory or measured.memory_bytes, measured.cpus)
        allocated = None
        if starting is not None:
            allocated = sum(
                SIZES[c.spec.size].memory_bytes
                for c in self.store.list_containers(node=self.agent.name)
                if c.id != starting and (c.status.state in ACTIVE or c.id in self._starting)
            )
        reason = refusal(SIZES[size], node, policy.memory_overcommit, allocated)
        if reason is not None:
            raise Conflict(reason, field="size")

    async def _run(self, tenant: Tenant, c: Container) -> Container:
        st = c.status
        try:
            st.pid = await self.agent.start(Placement(c, tenant.id, tenant.index))
        except RuntimeFailure as exc:
            st.state = "exited" if st.started_at else "created"
            st.error = exc.message
            st.exit_code = 127 if "not found" in exc.message or "no such file" in exc.message else 128
            self.store.save_status(c.id, st)
            await self.bus.notify()
            if st.exit_code == 127:
                raise InvalidArgument(f"cannot start container: {exc.message}", field="cmd") from None
            raise
        st.state = "running"
        st.started_at = _now()
        st.finished_at = None
        st.exit_code = 0
        st.oom_killed = False
        st.error = ""
        self.store.save_status(c.id, st)
        await self.bus.emit(tenant.id, "container", "start", c.id, c.name, {"image": c.spec.image, "size": c.spec.size})
        return c

    async def stop(self, tenant: Tenant, ref: str, timeout: float | None = None, signal: str | None = None) -> Container:
        c = self.get(tenant, ref)
        self._cancel_restart(c.id)
        c.spec.desired = "stopped"
        self.store.save_spec(c.id, c.spec)
        sig = parse_signal(signal or c.spec.stop_signal)
        await self.agent.stop(c.id, c.spec.stop_timeout if timeout is None else timeout, sig.name)
        return await self._settled(c.id)

    async def kill(self, tenant: Tenant, ref: str, signal: str = "KILL") -> Container:
        c = self.get(tenant, ref)
        sig = parse_signal(signal)
        if c.status.state != "running":
            raise Conflict(f"container {c.name} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.spec.desired = "stopped"
            self.store.save_spec(c.id, c.spec)
        await self.agent.kill(c.id, sig.name)
        return c

    async def restart(self, tenant: Tenant, ref: str, timeout: float | None = None) -> Container:
        await self.stop(tenant, ref, timeout)
        return await self.start(tenant, ref)

    async def _settled(self, cid: str, timeout: float = 30.0) -> Container:
        """The record once the node has reported the exit (the watcher writes it)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.store.get_container(cid)
            if c.status.state not in ACTIVE or time.monotonic() > deadline:
                return c
            if await self.agent.state(cid) not in ("running", "created", "paused"):
                status = self.agent.exit_status(cid)
                if status is not None:
                    await self.on_exit(cid, status)
                    continue
            await self.bus.wait(0.5)

    # remove ------------------------------------------------------------------------------
    async def remove(self, tenant: Tenant, ref: str, force: bool = False) -> None:
        c = self.get(tenant, ref)
        if c.status.state in ACTIVE and not force:
            raise Conflict(f"container {c.name} is {c.status.state}: stop it first, or remove it with force")
        self._cancel_restart(c.id)
        c.spec.desired = "stopped"
        self.store.save_spec(c.id, c.spec)
        c.status.state = "removing"
        self.store.save_status(c.id, c.status)
        await self.agent.remove(c.id)
        if c.status.started_at and c.status.finished_at is None:
            await self.bus.emit(tenant.id, "container", "die", c.id, c.name, {"exitCode": "137"})
        self.store.delete_container(c.id)
        await self.bus.emit(tenant.id, "container", "destroy", c.id, c.name, {"image": c.spec.image})
        await self.images.release(c.spec.image_id)
        self._refresh_hosts(tenant)

    async def rename(self, tenant: Tenant, ref: str, name: str) -> Container:
        c = self.get(tenant, ref)
        checked = ContainerCreate(image="x", name=name).name or name
        self.store.rename_container(c.id, tenant.id, checked)
        await self.bus.emit(tenant.id, "container", "rename", c.id, checked, {"oldName": c.name})
        self._refresh_hosts(tenant)
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
            except NotFound:
                return last
            last = cur
            if condition == "not-running" and cur.status.state not in ACTIVE and cur.status.state != "removing":
                return cur
            if condition == "next-exit" and cur.status.state not in ACTIVE and cur.status.started_at != started:
                return cur
            await self.bus.wait(1.0)

    # logs and exec ---------------------------------------------------------------------------
    def logs(
        self, tenant: Tenant, ref: str, *, follow: bool = False, tail: int | None = None, since: float | None = None
    ) -> AsyncIterator[LogEntry]:
        """The container's output lines; with follow, new lines until the container stops."""
        c = self.get(tenant, ref)
        path = self.agent.log_path(c.id)
        since_at = datetime.fromtimestamp(since, UTC) if since else None
        if follow and c.status.state in ACTIVE:
            return follow_log(path, self._stopped(c.id), tail=tail, since=since_at)
        return _iterate(read_log(path, tail=tail, since=since_at))

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
    ) -> ExecProcess:
        c = self.get_running(tenant, ref)
        return await self.agent.exec(
            c.id, cmd, env=env or [], cwd=workdir, user=user, tty=tty, stdin=stdin
        )

    def attach(self, tenant: Tenant, ref: str) -> asyncio.Future[AttachStream]:
        """The container's live stdio: now if it runs, else as soon as it starts (before its process runs)."""
        c = self.get(tenant, ref)
        path = self.agent.attach_path(c.id)
        future: asyncio.Future[AttachStream] = asyncio.get_running_loop().create_future()

        async def connect() -> None:
            if future.done():  # the client gave up before the start
                return
            try:
                future.set_result(await AttachStream.connect(path))
            except Exception as exc:
                future.set_exception(exc)

        if c.status.state == "running":
            asyncio.ensure_future(connect())
        else:
            self.agent.before_start(c.id, connect)
        return future

    def resize(self, tenant: Tenant, ref: str, height: int, width: int) -> None:
        c = self.get_running(tenant, ref)
        self.agent.resize(c.id, height, width)

    # exits and restarts (the controller side) ---------------------------------------------------
    async def on_exit(self, cid: str, status: ExitStatus) -> None:
        try:
            c = self.store.get_container(cid)
        except NotFound:
            return
        if c.status.state not in ACTIVE:
            return
        st = c.status
        st.state = "exited"
        st.exit_code = status.code
        st.finished_at = status.finished_at
        st.oom_killed = status.oom_killed
        st.pid = 0
        at = status.finished_at.timestamp()
        if status.oom_killed:
            await self.bus.emit(c.tenant, "container", "oom", cid, c.name, {}, at=at)
        policy = c.spec.restart
        restart = c.spec.desired == "running" and (
            policy.name in ("always", "unless-stopped")
            or (
                policy.name == "on-failure"
                and status.code != 0
                and (policy.max_retries == 0 or st.restart_count < policy.max_retries)
            )
        )
        if restart:
            st.state = "restarting"
            st.restart_count += 1
        self.store.save_status(cid, st)
        await self.bus.emit(c.tenant, "container", "die", cid, c.name, {"exitCode": str(status.code)}, at=at)
        if restart:
            delay = min(0.1 * 2 ** (st.restart_count - 1), RESTART_BACKOFF_MAX)
            self._restarts[cid] = asyncio.create_task(self._restart_later(cid, delay))
        elif c.spec.auto_remove:
            self._restarts[cid] = asyncio.create_task(self._remove_later(cid))

    async def _restart_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._restarts.pop(cid, None)
        try:
            c = self.store.get_container(cid)
            if c.status.state != "restarting" or c.spec.desired != "running":
                return
            tenant = self.store.tenant_by_id(c.tenant)
            await self._run(tenant, c)
        except NotFound:
            return
        except Exception:
            log.exception("restart of %s failed", cid[:12])

    async def _remove_later(self, cid: str) -> None:
        """Auto-remove (run --rm) once the exit has been recorded."""
        self._restarts.pop(cid, None)
        try:
            c = self.store.get_container(cid)
            await self.remove(self.store.tenant_by_id(c.tenant), cid, force=True)
        except NotFound:
            return
        except Exception:
            log.exception("auto-remove of %s failed", cid[:12])

    def _cancel_restart(self, cid: str) -> None:
        task = self._restarts.pop(cid, None)
        if task:
            task.cancel()

    # reconcile after (re)start of the server ---------------------------------------------------
    async def adopt(self) -> None:
        """Re-attach to containers that outlived the previous server process, and repair the rest."""
        mine = self.store.list_containers(node=self.agent.name)
        tenants = {t.id: t for t in self.store.list_tenants()}
        await self.agent.reconcile_network(
            {tenants[c.tenant].index for c in mine if c.tenant in tenants},
            {c.id for c in mine if c.status.ip},
        )
        for tenant in tenants.values():
            self._refresh_hosts(tenant)
        for c in mine:
            if c.status.state == "removing":
                await self.agent.remove(c.id)
                self.store.delete_container(c.id)
                await self.bus.emit(c.tenant, "container", "destroy", c.id, c.name, {"image": c.spec.image})
                await self.images.release(c.spec.image_id)
                continue
            if c.status.state not in ACTIVE:
                continue
            state = await self.agent.state(c.id)
            if state in ("running", "paused"):
                self.agent.watch(c.id)
                continue
            status = self.agent.exit_status(c.id)
            if status is None:  # the runtime forgot it (host reboot): it died at an unknown time
                status = ExitStatus(code=255, finished_at=_now(), oom_killed=False)
            if c.status.state == "restarting":
                c.status.state = "running"
                self.store.save_status(c.id, c.status)
            await self.on_exit(c.id, status)

    async def close(self) -> None:
        for task in self._restarts.values():
            task.cancel()
        self._restarts.clear()

    def _refresh_hosts(self, tenant: Tenant) -> None:
        entries = [
            (c.status.ip, [c.name, c.id[:12]]) for c in reversed(self.store.list_containers(tenant.id)) if c.status.ip
        ]
        self.agent.write_hosts(tenant.index, entries)  # type: ignore[arg-type]


async def _iterate(entries: list[LogEntry]) -> AsyncIterator[LogEntry]:
    for entry in entries:
        yield entry


def _merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *overrides]:
        key, _, value = item.partition("=")
        merged[key] = value
    merged.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return [f"{k}={v}" for k, v in merged.items()]
