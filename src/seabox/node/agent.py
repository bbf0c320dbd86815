"""The node agent: turns container records assigned to this host into running containers, and reports exits."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from seabox.config import ServerConfig
from seabox.errors import Conflict, RuntimeFailure
from seabox.model.container import Container
from seabox.model.sizes import get_size
from seabox.node.images.rootfs import mount_overlay, unmount_overlay
from seabox.node.images.store import ImageStore
from seabox.node.network.manager import NodeNetwork
from seabox.node.runtime.base import ExitStatus, Mount, RunSpec
from seabox.node.runtime.runc_runtime import RuncRuntime
from seabox.node.volumes.store import VolumeStore

log = logging.getLogger(__name__)

ExitCallback = Callable[[str, ExitStatus], Awaitable[None]]
HOSTS_HEADER = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


@dataclass(frozen=True)
class Placement:
    """What the control plane tells the node about one container besides its record."""

    container: Container
    tenant_id: str
    tenant_index: int


class NodeAgent:
    """Owns everything root-level for the containers on this node; the control plane calls it, never runc."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.name = cfg.node_name
        self.root = cfg.data_dir
        self.run_dir = cfg.run_dir
        self.images = ImageStore(cfg.data_dir / "images", cfg.registries, max_unpacked=cfg.disk.image_max_unpacked)
        self.volumes = VolumeStore(cfg.data_dir / "volumes")
        self.network = NodeNetwork(cfg.network, self.run_dir, table=cfg.network.nft_table)
        self.runtime = RuncRuntime(self.run_dir, log_size_max=cfg.disk.container_log_max)
        self.on_exit: ExitCallback | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._start_hooks: dict[str, list[Callable[[], Awaitable[None]]]] = {}

    # paths -----------------------------------------------------------------------
    def bundle(self, cid: str) -> Path:
        return self.root / "containers" / cid

    def hosts_file(self, tenant_index: int) -> Path:
        return self.root / "tenants" / str(tenant_index) / "hosts"

    # lifecycle -------------------------------------------------------------------
    async def prepare(self, p: Placement) -> None:
        """Root filesystem, network namespace and /etc files; idempotent."""
        c = p.container
        bundle = self.bundle(c.id)
        bundle.mkdir(parents=True, exist_ok=True)
        image = self.images.get(c.spec.image_id)
        await asyncio.to_thread(mount_overlay, image.rootfs, bundle, get_size(c.spec.size).disk_bytes)
        if c.status.ip:
            await asyncio.to_thread(self.network.attach, c.id, p.tenant_index, IPv4Address(c.status.ip))
        hosts = self.hosts_file(p.tenant_index)
        if not hosts.exists():
            hosts.parent.mkdir(parents=True, exist_ok=True)
            hosts.write_text(HOSTS_HEADER)
        (bundle / "hostname").write_text(c.spec.hostname + "\n")
        resolv = Path("/etc/resolv.conf")
        (bundle / "resolv.conf").write_text(resolv.read_text() if resolv.exists() else "")

    def _run_spec(self, p: Placement) -> RunSpec:
        c = p.container
        bundle = self.bundle(c.id)
        size = get_size(c.spec.size)
        mounts = [
            Mount(self.hosts_file(p.tenant_index), "/etc/hosts", readonly=True),
            Mount(bundle / "hostname", "/etc/hostname", readonly=True),
            Mount(bundle / "resolv.conf", "/etc/resolv.conf", readonly=True),
        ]
        for v in c.spec.volumes:
            mounts.append(Mount(self.volumes.existing(p.tenant_id, v.volume), v.path, readonly=v.readonly))
        return RunSpec(
            id=c.id,
            name=c.name,
            bundle=bundle,
            args=c.spec.args,
            env=c.spec.env,
            cwd=c.spec.workdir or "/",
            user=c.spec.user,
            hostname=c.spec.hostname,
            tty=c.spec.tty,
            open_stdin=c.spec.stdin_open,
            memory_bytes=size.memory_bytes,
            cpu_shares=size.cpu_shares,
            cpu_quota=size.cpus,
            pids_limit=size.pids,
            netns=self.network.netns_path(c.id) if c.status.ip else None,
            mounts=mounts,
            labels=c.spec.labels,
        )

    def before_start(self, cid: str, hook: Callable[[], Awaitable[None]]) -> None:
        """Run HOOK after the container's supervisor exists but before its process starts (attach uses this)."""
        self._start_hooks.setdefault(cid, []).append(hook)

    async def start(self, p: Placement) -> int:
        """Create the container under conmon and start it; returns the pid. Exits are reported via on_exit."""
        cid = p.container.id
        await self.prepare(p)
        if self.runtime.known(cid):  # a previous run's state (restart, or a crash mid-start)
            await self.runtime.delete(cid)
        pid = await self.runtime.create(self._run_spec(p))
        for hook in self._start_hooks.pop(cid, []):
            try:
                await hook()
            except Exception:  # an attach client that went away must not stop the start
                log.exception("start hook for %s failed", cid)
        try:
            await self.runtime.start(cid)
        except RuntimeFailure:
            await self.runtime.delete(cid)
            raise
        self.watch(cid)
        return pid

    def watch(self, cid: str) -> None:
        """Report the container's exit through on_exit once it happens (also for re-adopted containers)."""
        old = self._watchers.get(cid)
        if old and not old.done():
            return
        self._watchers[cid] = asyncio.create_task(self._watch(cid), name=f"watch-{cid[:12]}")

    async def _watch(self, cid: str) -> None:
        status = await self.runtime.wait_exit(self.bundle(cid), cid)
        self._watchers.pop(cid, None)
        if self.on_exit:
            await self.on_exit(cid, status)

    async def state(self, cid: str) -> str | None:
        return await self.runtime.state(cid)

    def exit_status(self, cid: str) -> ExitStatus | None:
        return self.runtime.exit_status(self.bundle(cid), cid)

    async def kill(self, cid: str, signal: int | str) -> None:
        if await self.runtime.state(cid) not in ("running", "paused"):
            raise Conflict(f"container {cid[:12]} is not running")
        await self.runtime.kill(cid, signal)

    async def stop(self, cid: str, timeout: float, signal: int | str) -> None:
        """SIGNAL, then SIGKILL after TIMEOUT seconds; returns once the process is gone."""
        if await self.runtime.state(cid) not in ("running", "paused", "created"):
            return
        try:
            await self.runtime.kill(cid, signal)
            await asyncio.wait_for(self.runtime.wait_exit(self.bundle(cid), cid), timeout)
        except (TimeoutError, Conflict):
            pass
        if await self.runtime.state(cid) in ("running", "paused", "created"):
            await self.runtime.kill(cid, "KILL")
            await self.runtime.wait_exit(self.bundle(cid), cid)

    async def remove(self, cid: str) -> None:
        """Everything the container had on this node: runtime state, netns, rootfs, bundle."""
        watcher = self._watchers.pop(cid, None)
        if watcher:
            watcher.cancel()
        if await self.runtime.state(cid) in ("running", "paused", "created"):
            await self.runtime.kill(cid, "KILL")
            await self.runtime.wait_exit(self.bundle(cid), cid)
        await self.runtime.delete(cid)
        await asyncio.to_thread(self.network.detach, cid)
        bundle = self.bundle(cid)
        await asyncio.to_thread(unmount_overlay, bundle)
        await asyncio.to_thread(shutil.rmtree, bundle, True)

    # tenant files ------------------------------------------------------------------
    def write_hosts(self, tenant_index: int, entries: list[tuple[str, list[str]]]) -> None:
        """Rewrite the tenant's shared /etc/hosts in place (bind mounts keep pointing at the same inode)."""
        path = self.hosts_file(tenant_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = HOSTS_HEADER + "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in entries)
        with open(path, "a+") as f:
            f.seek(0)
            if f.read() == body:
                return
            f.seek(0)
            f.truncate()
            f.write(body)

    # adoption ----------------------------------------------------------------------
    async def reconcile_network(self, tenant_indexes: set[int], container_ids: set[str]) -> None:
        await asyncio.to_thread(self.network.reconcile, tenant_indexes, container_ids)

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        self._watchers.clear()
