"""A container's cgroup v1 files: resource counters, member processes, OOM kills read; its caps written."""

from __future__ import annotations

import errno
import functools
import os
from datetime import UTC, datetime
from pathlib import Path

from seabox.errors import Conflict, NotFound
from seabox.protocol.runtime import Stats
from seabox.node.runtime.spec import CFS_PERIOD_US, CGROUP_PARENT

_MOUNTINFO = "/proc/self/mountinfo"
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_PROC_STAT = "/proc/stat"


@functools.cache
def _mounts() -> dict[str, tuple[str, str]]:
    """Each cgroup v1 controller -> (mount point, cgroup path at that mount's root)."""
    found: dict[str, tuple[str, str]] = {}
    with open(_MOUNTINFO) as mountinfo:
        for line in mountinfo:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields, tail = left.split(" "), right.split(" ")
            if len(tail) < 3 or tail[0] != "cgroup":
                continue
            for option in tail[2].split(","):
                found.setdefault(option.removeprefix("name="), (fields[4], fields[3]))
    return found


def cgroup_dir(controller: str, cid: str) -> Path:
    """The container's directory in one controller's hierarchy (cgroupsPath is /seabox/<id>)."""
    mounts = _mounts()
    if controller not in mounts:
        raise NotFound(f"the {controller} cgroup controller is not mounted on this node")
    mount_point, mount_root = mounts[controller]
    relative = os.path.relpath(f"{CGROUP_PARENT}/{cid}", mount_root)
    return Path(mount_point) / relative


def _read(controller: str, cid: str, name: str) -> str:
    try:
        return (cgroup_dir(controller, cid) / name).read_text()
    except FileNotFoundError as exc:
        raise NotFound(f"no cgroup for container {cid}") from exc


def _read_int(controller: str, cid: str, name: str) -> int:
    text = _read(controller, cid, name).strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def _key_values(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def _system_cpu() -> tuple[int, int]:
    """The host's total CPU time in ns (user through softirq, as Docker sums it) and its CPU count."""
    total, cpus = 0, 0
    with open(_PROC_STAT) as stat:
        for line in stat:
            if line.startswith("cpu "):
                total = sum(int(v) for v in line.split()[1:8]) * _NS_PER_TICK
            elif line.startswith("cpu"):
                cpus += 1
            else:
                break
    return total, cpus


def _block_bytes(cid: str) -> tuple[int, int]:
    try:
        text = _read("blkio", cid, "blkio.throttle.io_service_bytes")
    except NotFound:
        return 0, 0
    read = write = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                write += int(fields[2])
    return read, write


def read_stats(cid: str) -> Stats:
    """The container's counters now; NotFound if it has no cgroup (never created, or deleted)."""
    cpu_ns = _read_int("cpuacct", cid, "cpuacct.usage")
    per_cpu = [int(v) for v in _read("cpuacct", cid, "cpuacct.usage_percpu").split()]
    ticks = _key_values(_read("cpuacct", cid, "cpuacct.stat"))
    throttling = _key_values(_read("cpu", cid, "cpu.stat"))
    memory_stat = _key_values(_read("memory", cid, "memory.stat"))
    pids_max = _read("pids", cid, "pids.max").strip()
    system_ns, online = _system_cpu()
    block_read, block_write = _block_bytes(cid)
    return Stats(
        cpu_ns=cpu_ns,
        memory_bytes=_read_int("memory", cid, "memory.usage_in_bytes"),
        memory_limit=_read_int("memory", cid, "memory.limit_in_bytes"),
        pids=_read_int("pids", cid, "pids.current"),
        read_at=datetime.now(UTC),
        per_cpu_ns=per_cpu,
        cpu_user_ns=ticks.get("user", 0) * _NS_PER_TICK,
        cpu_kernel_ns=ticks.get("system", 0) * _NS_PER_TICK,
        system_cpu_ns=system_ns,
        online_cpus=online or len(per_cpu),
        throttled_periods=throttling.get("nr_throttled", 0),
        throttled_ns=throttling.get("throttled_time", 0),
        memory_max_bytes=_read_int("memory", cid, "memory.max_usage_in_bytes"),
        memory_failcnt=_read_int("memory", cid, "memory.failcnt"),
        memory_stat=memory_stat,
        pids_limit=int(pids_max) if pids_max.isdigit() else None,
        block_read_bytes=block_read,
        block_write_bytes=block_write,
    )


def member_pids(cid: str) -> list[int]:
    """Host pids of every process in the container, in the order the kernel lists them."""
    return [int(p) for p in _read("pids", cid, "cgroup.procs").split()]


def top(cid: str) -> list[tuple[int, str]]:
    """(pid, command line) of each process in the container; kernel-style [comm] when argv is empty."""
    processes: list[tuple[int, str]] = []
    for pid in member_pids(cid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().rstrip(b"\0").split(b"\0")
            command = " ".join(a.decode(errors="replace") for a in argv if a)
            if not command:
                command = f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        processes.append((pid, command))
    return processes


def in_container(pid: int, cid: str) -> bool:
    """Whether pid is a process in the container's cgroup."""
    try:
        with open(f"/proc/{pid}/cgroup") as cgroups:
            return any(line.rstrip("\n").endswith(f"{CGROUP_PARENT}/{cid}") for line in cgroups)
    except (FileNotFoundError, ProcessLookupError):
        return False


def oom_kills(cid: str) -> int:
    """How many processes the kernel OOM-killed in the container's memory cgroup; 0 if it has none."""
    try:
        return _key_values(_read("memory", cid, "memory.oom_control")).get("oom_kill", 0)
    except NotFound:
        return 0


def _write(controller: str, cid: str, name: str, value: int) -> None:
    path = cgroup_dir(controller, cid) / name
    try:
        path.write_text(f"{value}\n")
    except FileNotFoundError as exc:
        raise NotFound(f"no cgroup for container {cid}") from exc


def write_limits(cid: str, memory_bytes: int, cpu_shares: int, cpus: float, pids: int) -> None:
    """Set the caps of the container's cgroup, what `runc update` writes: memory with no swap, CPU weight and
    time, processes. Memory in use above a lower limit that the kernel cannot reclaim is a Conflict, with
    the memory caps as they were."""
    memory = cgroup_dir("memory", cid)
    swap = (memory / "memory.memsw.limit_in_bytes").exists()
    raising = memory_bytes > _read_int("memory", cid, "memory.limit_in_bytes")
    # memory.limit_in_bytes may never exceed memsw: the larger one first when raising, the other when lowering
    order = ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"] if raising else \
        ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    for name in order:
        if name.startswith("memory.memsw") and not swap:
            continue
        try:
            _write("memory", cid, name, memory_bytes)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            raise Conflict(f"the container uses more than {memory_bytes} bytes of memory that cannot be "
                           "reclaimed") from None
    _write("cpu", cid, "cpu.shares", cpu_shares)
    _write("cpu", cid, "cpu.cfs_period_us", CFS_PERIOD_US)
    _write("cpu", cid, "cpu.cfs_quota_us", round(cpus * CFS_PERIOD_US))
    _write("pids", cid, "pids.max", pids)
