"""The runtime-class contract: what the node agent asks of any OCI runtime, and the records it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from seabox.node.runtime.exec import ExecProcess
from seabox.protocol.runtime import ExitStatus, Stats


@dataclass
class Mount:
    """A bind mount into the container: a volume, /etc/hosts, /etc/resolv.conf or /etc/hostname."""

    source: Path
    destination: str
    readonly: bool = False


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs mount with its mount options (size included)."""

    destination: str
    options: list[str]


@dataclass(frozen=True)
class IdMap:
    """Container ids 0..size-1 are host ids host_base..host_base+size-1 (one tenant's user namespace)."""

    host_base: int
    size: int = 65536


@dataclass(frozen=True)
class Ulimit:
    """One resource limit of the container's processes (Docker's --ulimit NAME=SOFT:HARD)."""

    name: str  # nofile, nproc, core, ... (RLIMIT_ without the prefix, lower case)
    soft: int
    hard: int


@dataclass(frozen=True)
class Limits:
    """A container's cgroup caps, from its size: memory (no swap), CPU weight, CPU time in cores, processes."""

    memory_bytes: int
    cpu_shares: int
    cpus: float
    pids: int


@dataclass
class RunSpec:
    """Everything needed to create one container in a prepared bundle directory."""

    id: str  # 64 lowercase hex digits
    name: str
    bundle: Path  # config.json is written here; the caller has mounted bundle/"rootfs"
    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""  # "", "uid", "uid:gid", "name" or "name:group", resolved in the rootfs
    hostname: str = ""  # "" means the first 12 digits of the id, as Docker does
    tty: bool = False
    open_stdin: bool = False
    memory_bytes: int = 512 << 20
    cpu_shares: int = 1024
    cpu_quota: float | None = None  # cores, enforced through the CFS quota and period
    pids_limit: int | None = None
    netns: Path | None = None  # join this network namespace; None means a new, empty one
    mounts: list[Mount] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # become OCI annotations
    id_map: IdMap | None = None  # run in a user namespace with this mapping (uids and gids alike)
    seccomp: bool = True  # apply the default seccomp profile
    cap_drop: list[str] = field(default_factory=list)  # CAP_ names, or ALL
    readonly_rootfs: bool = False
    ulimits: list[Ulimit] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)  # CAP_ names within Docker's default set
    seccomp_profile: str | None = None  # Docker-format JSON that narrows the default filter
    tmpfs: list[Tmpfs] = field(default_factory=list)
    init: Path | None = None  # a static init binary run as PID 1 (mounted at /sbin/docker-init)
    group_add: list[str] = field(default_factory=list)  # gids or names in the rootfs /etc/group
    cpuset_cpus: str | None = None
    log_size_max: int | None = None  # bytes; past it conmon starts a new log file
    log_files: int = 1  # the log files kept, the one conmon writes included


class RuntimeClass(Protocol):
    """An OCI runtime under conmon supervision, as the node agent drives it."""

    name: str

    async def create(self, spec: RunSpec) -> int:
        """Write config.json, launch the supervisor; return the container's pid (state 'created')."""
        ...

    async def start(self, cid: str) -> None:
        """Run the created container's process."""
        ...

    async def kill(self, cid: str, signal: int | str) -> None:
        """Signal the container's main process; Conflict if it is not running."""
        ...

    async def pause(self, cid: str) -> None:
        """Freeze the running container's processes (state 'paused'); Conflict if it is not running."""
        ...

    async def resume(self, cid: str) -> None:
        """Thaw the paused container (state 'running' again); Conflict if it is not paused."""
        ...

    async def update(self, cid: str, limits: Limits) -> None:
        """Set the live container's cgroup caps to LIMITS; Conflict for a class that cannot change them live."""
        ...

    async def delete(self, cid: str) -> None:
        """Kill if needed and drop the runtime's state; bundle files stay. Idempotent."""
        ...

    async def state(self, cid: str) -> str | None:
        """'created', 'running', 'stopped', 'paused', or None for an unknown container."""
        ...

    async def pid(self, cid: str) -> int:
        """The host pid of the container's main process, 0 when it has none (not running, or unknown)."""
        ...

    def known(self, cid: str) -> bool:
        """Whether the runtime holds any state for the container (cheap: no runtime call)."""
        ...

    def exit_status(self, bundle: Path, cid: str) -> ExitStatus | None:
        """The recorded exit, or None while the container runs or if it never ran."""
        ...

    async def wait_exit(self, bundle: Path, cid: str) -> ExitStatus:
        """Return once the container has exited (at once if it has), also for an earlier agent's one."""
        ...

    def log_path(self, bundle: Path) -> Path:
        """The container's k8s-file log."""
        ...

    def attach_path(self, cid: str) -> Path:
        """The container's attach socket (SOCK_SEQPACKET)."""
        ...

    def resize(self, bundle: Path, height: int, width: int) -> None:
        """Set the window size of the container's terminal."""
        ...

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
        """Start another process in the running container."""
        ...

    def stats(self, cid: str) -> Stats:
        """Read the container's resource counters."""
        ...

    async def top(self, cid: str) -> list[tuple[int, str]]:
        """The pids and command lines of the container's processes, as the class can see them."""
        ...
