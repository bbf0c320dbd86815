"""The node agent: turns container records assigned to this host into running containers, and reports exits."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path

from seabox.config import ServerConfig
from seabox.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, UpstreamError
from seabox.model.container import ContainerSpec
from seabox.model.node import NodeCapacity
from seabox.model.runtime import ID_RANGE
from seabox.model.sizes import get_size
from seabox.node import archive, disk_usage, hostdirs, identity, limits, loopfs
from seabox.node.dns.resolvers import GATEWAY_SERVICES, Resolvers, resolv_conf_text
from seabox.node.images.rootfs import mount_overlay, unmount_overlay
from seabox.node.images.store import ImageStore
from seabox.node.mounts import is_mounted
from seabox.node.network.manager import Exposure, NodeNetwork, Service
from seabox.node.network.names import check_container_id
from seabox.node.runtime.base import IdMap, Mount, RunSpec, Tmpfs, Ulimit
from seabox.protocol.archive import Change, PathStat, UploadOptions
from seabox.protocol.assignments import HostsEntry
from seabox.protocol.images import ImageInfo
from seabox.protocol.link import ExitCallback
from seabox.protocol.placement import Placement
from seabox.protocol.runtime import ExitStatus, Stats
from seabox.node.runtime.exec import ExecProcess
from seabox.node.tcp_dial import LocalTcp, open_tcp
from seabox.node.runtime.gvisor import GvisorRuntime
from seabox.node.runtime.log_files import LogFiles, Rotations
from seabox.node.runtime.runc_runtime import OciRuntime, RuncRuntime
from seabox.node.runtime.spec import init_binary
from seabox.node.volumes.store import VolumeStore

log = logging.getLogger(__name__)

HOSTS_HEADER = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_RUNTIME_MARKER = "runtime"  # bundle file naming the container's runtime class
_ADDRESS_MARKER = "address"  # bundle file holding the container's tenant IP (empty: no network)


class NodeAgent:
    """Owns everything root-level for the containers on this node; the control plane calls it, never runc."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.name = cfg.node_name
        self.root = cfg.data_dir
        self.run_dir = cfg.run_dir
        self.cfg = cfg
        self.isolation = cfg.isolation
        hostdirs.secure_data_dir(cfg.data_dir)
        listeners = [cfg.listen, *([cfg.tls.listen] if cfg.tls.listen else [])]
        names = identity.net_names(cfg.data_dir, cfg.network.nft_table)
        self.network = NodeNetwork(
            cfg.network, self.run_dir, names, listeners=listeners, gateway_services=GATEWAY_SERVICES,
            resolv_conf=cfg.network.resolv_conf,
        )
        self.resolvers = Resolvers(self.network, cfg.network.resolv_conf)
        self.images = ImageStore(
            cfg.data_dir / "images", cfg.registries, egress=self.network.pulls,
            max_unpacked=cfg.disk.image_max_unpacked,
        )
        self.volumes = VolumeStore(cfg.data_dir / "volumes")
        log_max = cfg.disk.container_log_max
        self.runtimes: dict[str, OciRuntime] = {
            "runc": RuncRuntime(self.run_dir, log_size_max=log_max),
            "gvisor": GvisorRuntime(self.run_dir, self.network.netns_path, log_size_max=log_max),
        }
        self.on_exit: ExitCallback | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._rotations = Rotations()
        self._start_hooks: dict[str, list[Callable[[], Awaitable[None]]]] = {}

    @staticmethod
    def measure(cfg: ServerConfig) -> NodeCapacity:
        """The memory containers may have here ([admission] node_memory, else MemTotal) and the CPUs this process may use."""
        memory = cfg.admission.node_memory
        if memory is None:
            with open("/proc/meminfo") as f:
                memory = 1024 * next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        return NodeCapacity(cfg.node_name, memory, len(os.sched_getaffinity(0)))

    def capacity(self) -> NodeCapacity:
        return self.measure(self.cfg)

    # paths -----------------------------------------------------------------------
    def bundle(self, cid: str) -> Path:
        return self.root / "containers" / cid

    async def upper_dir(self, p: Placement) -> Path:
        """The container's filesystem changes (its overlay upper dir), mounted first if it never ran."""
        await self._root(p)
        return self.bundle(p.container.id) / "disk" / "upper"

    def hosts_file(self, tenant_index: int) -> Path:
        return self.root / "tenants" / str(tenant_index) / "hosts"

    # lifecycle -------------------------------------------------------------------
    def id_base(self, p: Placement) -> int | None:
        """The host uid that is root in the container, or None for a class with its own isolation."""
        if p.container.spec.runtime_class != "runc":
            return None
        return self.isolation.host_id_base(p.tenant_index)

    def local_containers(self) -> list[str]:
        """The ids of every container this node holds a bundle for."""
        root = self.root / "containers"
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def runtime_of(self, cid: str) -> OciRuntime:
        """The runtime class that runs (or ran) container cid on this node."""
        try:
            name = (self.bundle(cid) / _RUNTIME_MARKER).read_text().strip()
        except FileNotFoundError:
            name = "runc"
        return self.runtimes[name]

    def _runtime(self, p: Placement) -> OciRuntime:
        name = p.container.spec.runtime_class
        if name not in self.runtimes:
            raise InvalidArgument(f"runtime class {name!r} is not available on node {self.name}", field="runtime")
        return self.runtimes[name]

    async def prepare(self, p: Placement) -> None:
        """Root filesystem, network namespace (for a class that needs one first) and /etc files; idempotent."""
        c = p.container
        bundle = self.bundle(c.id)
        base = self.id_base(p)
        hostdirs.make_private_dir(bundle, base)
        (bundle / _RUNTIME_MARKER).write_text(c.spec.runtime_class)
        (bundle / _ADDRESS_MARKER).write_text(c.status.ip or "")
        image = await self._image(c.spec.image_pull or c.spec.image, c.spec.image_id)
        lower = self.images.rootfs(image.id) if base is None else await self.images.mapped_rootfs(image.id, base)
        disk = get_size(c.spec.size).disk_bytes
        await asyncio.to_thread(mount_overlay, lower, bundle, disk, base or 0, self.root / "disk-templates")
        if c.status.ip and base is None:
            await asyncio.to_thread(self.network.attach, c.id, p.tenant_index, IPv4Address(c.status.ip))
        hosts = self.hosts_file(p.tenant_index)
        if not hosts.exists():
            hostdirs.make_private_dir(hosts.parent, base)
            hosts.write_text(HOSTS_HEADER)
        (bundle / "hostname").write_text(c.spec.hostname + "\n")
        (bundle / "resolv.conf").write_text(resolv_conf_text(self.network, p.tenant_index))

    async def _image(self, name: str, image_id: str) -> ImageInfo:
        """The container's image, pulled by its name if this node does not hold it yet."""
        try:
            return self.images.get(image_id)
        except NotFound:
            if name == image_id:  # an untagged import: only the node it was imported on has it
                raise RuntimeFailure(f"image {image_id[:19]} is not on node {self.name}: import it there or push "
                                     "it to a registry") from None
        pulled = await self.images.pull(name)
        if pulled.id != image_id:
            raise RuntimeFailure(f"{name} in its registry is now image {pulled.id[:19]}, not {image_id[:19]} "
                                 "as when the container was made: create the container again")
        return pulled

    def _run_spec(self, p: Placement) -> RunSpec:
        c = p.container
        bundle = self.bundle(c.id)
        size = get_size(c.spec.size)
        mounts = [
            Mount(self.hosts_file(p.tenant_index), "/etc/hosts", readonly=True),
            Mount(bundle / "hostname", "/etc/hostname", readonly=True),
            Mount(bundle / "resolv.conf", "/etc/resolv.conf", readonly=True),
        ]
        base = self.id_base(p)
        for v in c.spec.volumes:
            data = self.volumes.existing(p.tenant_id, v.volume)
            hostdirs.make_private_dir(data.parent, base)  # the volume's filesystem root: no host user passes
            hostdirs.hand_over(data, base)
            mounts.append(Mount(data, v.path, readonly=v.readonly))
        caps = limits.limits_of(c.spec)
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
            memory_bytes=caps.memory_bytes,
            cpu_shares=caps.cpu_shares,
            cpu_quota=caps.cpus,
            pids_limit=caps.pids,
            netns=self.network.netns_path(c.id) if c.status.ip and base is None else None,
            mounts=mounts,
            labels=c.spec.labels,
            id_map=IdMap(base, ID_RANGE) if base is not None else None,
            seccomp=c.spec.runtime_class == "runc",
            cap_drop=list(c.spec.cap_drop),
            readonly_rootfs=c.spec.read_only,
            ulimits=[Ulimit(u.name, u.soft, u.hard) for u in c.spec.ulimits],
            cap_add=list(c.spec.cap_add),
            seccomp_profile=c.spec.seccomp_profile,
            tmpfs=[Tmpfs(t.path, t.mount_options(size.memory_bytes // 2)) for t in c.spec.tmpfs],
            init=init_binary() if c.spec.init else None,
            group_add=list(c.spec.group_add),
            cpuset_cpus=c.spec.cpuset_cpus,
            log_size_max=c.spec.log.max_size,
            log_files=c.spec.log.max_file,
        )

    def before_start(self, cid: str, hook: Callable[[], Awaitable[None]]) -> None:
        """Run HOOK after the container's supervisor exists but before its process starts (attach uses this)."""
        self._start_hooks.setdefault(cid, []).append(hook)

    async def start(self, p: Placement) -> int:
        """Create the container under conmon and start it; returns the pid. Exits are reported via on_exit."""
        cid = p.container.id
        runtime = self._runtime(p)
        await self.prepare(p)
        for known in self.runtimes.values():
            if known.known(cid):  # a previous run's state (restart, or a crash mid-start)
                await known.delete(cid)
        spec = self._run_spec(p)
        pid = await runtime.create(spec)
        limits.record(self.bundle(cid), p.container.spec.size)
        try:
            if spec.id_map is not None and p.container.status.ip:
                # the runtime made the netns inside the container's user namespace: wire it now
                await asyncio.to_thread(
                    self.network.attach, cid, p.tenant_index, IPv4Address(p.container.status.ip), pid=pid
                )
            for hook in self._start_hooks.pop(cid, []):
                try:
                    await hook()
                except Exception:  # an attach client that went away must not stop the start
                    log.exception("start hook for %s failed", cid)
            await runtime.start(cid)
        except (RuntimeFailure, OSError):
            await runtime.delete(cid)
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
        files = LogFiles(self.log_path(cid))
        try:
            self._rotations.add(files)  # the files past --log-opt max-file go as conmon starts new ones
        except OSError as exc:
            log.warning("the log of %s is not watched for rotation (older files may be lost): %s", cid[:12], exc)
        try:
            status = await self.runtime_of(cid).wait_exit(self.bundle(cid), cid)
        finally:
            self._rotations.discard(files)
        self._watchers.pop(cid, None)
        if self.on_exit:
            await self.on_exit(cid, status)

    async def state(self, cid: str) -> str | None:
        return await self.runtime_of(cid).state(cid)

    async def pid(self, cid: str) -> int:
        return await self.runtime_of(cid).pid(cid)

    def exit_status(self, cid: str) -> ExitStatus | None:
        return self.runtime_of(cid).exit_status(self.bundle(cid), cid)

    async def kill(self, cid: str, signal: int | str) -> None:
        """Signal the container's main process; a paused container is thawed after, so the signal lands now."""
        runtime = self.runtime_of(cid)
        state = await runtime.state(cid)
        if state not in ("running", "paused"):
            raise Conflict(f"container {cid[:12]} is not running")
        if state == "paused":  # a frozen process takes no signal (runc refuses to send one): thawed first
            await runtime.resume(cid)
        await runtime.kill(cid, signal)

    async def pause(self, cid: str) -> None:
        await self.runtime_of(cid).pause(cid)

    async def resume(self, cid: str) -> None:
        await self.runtime_of(cid).resume(cid)

    async def apply_size(self, cid: str, spec: ContainerSpec) -> tuple[str, str]:
        """Give the live container SPEC's size's limits (see limits.converge)."""
        return await limits.converge(self.runtime_of(cid), self.bundle(cid), cid, spec)

    async def stop(self, cid: str, timeout: float, signal: int | str) -> None:
        """SIGNAL, then SIGKILL after TIMEOUT seconds; returns once the process is gone."""
        runtime = self.runtime_of(cid)
        state = await runtime.state(cid)
        if state not in ("running", "paused", "created"):
            return
        if state == "paused":  # a frozen process takes no signal: thawed first
            await runtime.resume(cid)
        try:
            await runtime.kill(cid, signal)
            await asyncio.wait_for(runtime.wait_exit(self.bundle(cid), cid), timeout)
        except (TimeoutError, Conflict):
            pass
        if await runtime.state(cid) in ("running", "paused", "created"):
            await runtime.kill(cid, "KILL")
            await runtime.wait_exit(self.bundle(cid), cid)

    async def remove(self, cid: str) -> None:
        """Everything the container had on this node: runtime state, netns, rootfs, bundle."""
        watcher = self._watchers.pop(cid, None)
        if watcher:
            watcher.cancel()
        runtime = self.runtime_of(cid)
        state = await runtime.state(cid)
        if state in ("running", "paused", "created"):
            if state == "paused":  # a frozen process takes no signal: thawed first
                await runtime.resume(cid)
            await runtime.kill(cid, "KILL")
            await runtime.wait_exit(self.bundle(cid), cid)
        await runtime.delete(cid)
        await asyncio.to_thread(self.network.detach, cid)
        bundle = self.bundle(cid)
        await asyncio.to_thread(unmount_overlay, bundle)
        await asyncio.to_thread(shutil.rmtree, bundle, True)

    # files ---------------------------------------------------------------------------
    async def _root(self, p: Placement) -> Path:
        """The container's merged rootfs, mounted first if it is not (never started, or the node restarted)."""
        merged = self.bundle(p.container.id) / "rootfs"
        if not (merged.is_dir() and is_mounted(merged)):
            await self.prepare(p)
        return merged

    def _volume_paths(self, p: Placement) -> list[tuple[str, Path, bool]]:
        """The container's volumes as a copy mounts them (each mounted here first if need be)."""
        return [(v.path, self.volumes.existing(p.tenant_id, v.volume), v.readonly) for v in p.container.spec.volumes]

    async def path_stat(self, p: Placement, path: str) -> PathStat:
        return await archive.path_stat(await self._root(p), path, self._volume_paths(p))

    async def read_archive(self, p: Placement, path: str) -> AsyncIterator[bytes]:
        return await archive.read_tar(await self._root(p), path, self.id_base(p) or 0, self._volume_paths(p))

    async def write_archive(self, p: Placement, path: str, data: AsyncIterator[bytes], options: UploadOptions) -> None:
        await archive.write_tar(await self._root(p), path, data, self.id_base(p) or 0, options, self._volume_paths(p),
                                read_only_root=p.container.spec.read_only)

    async def export(self, p: Placement) -> AsyncIterator[bytes]:
        return await archive.export_tar(await self._root(p), self.id_base(p) or 0)

    def layer_size(self, cid: str) -> int:
        """Bytes of the container's filesystem changes (see disk_usage.measured); 0 if it has no disk here."""
        check_container_id(cid)
        bundle = self.bundle(cid)
        if not (bundle / "disk.img").is_file():
            return 0
        loopfs.ensure_mounted(bundle / "disk.img", bundle / "disk", None)  # not mounted after a host reboot
        return disk_usage.measured(bundle / "disk" / "upper", bundle / "disk")

    async def changes(self, p: Placement) -> list[Change]:
        upper = await self.upper_dir(p)
        return await asyncio.to_thread(archive.changes, upper, self.images.rootfs(p.container.spec.image_id))

    # streams and readings ------------------------------------------------------------
    def log_path(self, cid: str) -> Path:
        return self.runtime_of(cid).log_path(self.bundle(cid))

    def attach_path(self, cid: str) -> Path:
        return self.runtime_of(cid).attach_path(cid)

    def resize(self, cid: str, height: int, width: int) -> None:
        self.runtime_of(cid).resize(self.bundle(cid), height, width)

    async def exec(
        self,
        cid: str,
        args: list[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str = "",
        tty: bool = False,
        stdin: bool = False,
    ) -> ExecProcess:
        return await self.runtime_of(cid).exec(cid, args, env=env, cwd=cwd, user=user, tty=tty, stdin=stdin)

    def stats(self, cid: str) -> Stats:
        return self.runtime_of(cid).stats(cid)

    async def dial(self, cid: str, port: int) -> LocalTcp:
        """A TCP connection from this node to PORT at the container's tenant address, across its bridge.

        NotFound for a container this node does not hold, Conflict if it is not running or has no
        network, UpstreamError if nothing accepts on the port."""
        check_container_id(cid)
        bundle = self.bundle(cid)
        if not bundle.is_dir():
            raise NotFound(f"no such container on node {self.name}: {cid[:12]}")
        try:
            ip = (bundle / _ADDRESS_MARKER).read_text().strip()
        except FileNotFoundError:
            raise Conflict(f"container {cid[:12]} was started by an older node agent: restart it to dial it") from None
        if not ip:
            raise Conflict(f"container {cid[:12]} has no network to dial")
        try:
            return await open_tcp(ip, port, f"container {cid[:12]}")
        except UpstreamError:
            if await self.state(cid) != "running":
                raise Conflict(f"container {cid[:12]} is not running") from None
            raise

    async def top(self, cid: str) -> list[tuple[int, str]]:
        return await self.runtime_of(cid).top(cid)

    # tenant files ------------------------------------------------------------------
    def write_hosts(self, tenant_index: int, entries: list[HostsEntry]) -> None:
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

    async def serve_dns(self, hosts: dict[int, list[HostsEntry]]) -> None:
        """Run a resolver on the gateway of each tenant in hosts (and no other), answering its entries' names."""
        await self.resolvers.converge(hosts)

    # adoption ----------------------------------------------------------------------
    async def reconcile_network(self, tenant_indexes: set[int], container_ids: set[str]) -> None:
        await asyncio.to_thread(self.network.reconcile, tenant_indexes, container_ids)

    async def expose(self, exposures: Mapping[str, Exposure]) -> None:
        """Floating IPs, published ports and security groups of this node's containers (container id -> Exposure)."""
        await asyncio.to_thread(self.network.expose, exposures)

    async def balance(self, services: Sequence[Service], *, apply: bool = True) -> None:
        """The load-balanced services of this node's tenants (VIPs, DNAT maps, service FIPs held here);
        without apply, only recorded for the next table (see NodeNetwork.balance)."""
        await asyncio.to_thread(self.network.balance, services, apply=apply)

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        self._watchers.clear()
        self._rotations.close()
        await self.resolvers.close()
