"""What a node reports about a container's runtime: how its process ended, and its resource readings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class ExitStatus:
    """How a container's main process ended."""

    code: int
    finished_at: datetime
    oom_killed: bool


@dataclass
class Stats:
    """One reading of a container's cgroup counters, with what `docker stats` derives its figures from."""

    cpu_ns: int  # total CPU time used by the container
    memory_bytes: int  # memory.usage_in_bytes (page cache included, as Docker reports it)
    memory_limit: int
    pids: int
    read_at: datetime
    per_cpu_ns: list[int] = field(default_factory=list)
    cpu_user_ns: int = 0
    cpu_kernel_ns: int = 0
    system_cpu_ns: int = 0  # the host's busy+idle time from /proc/stat, the denominator of CPU %
    online_cpus: int = 0
    throttled_periods: int = 0
    throttled_ns: int = 0
    memory_max_bytes: int = 0
    memory_failcnt: int = 0
    memory_stat: dict[str, int] = field(
        default_factory=dict
    )  # memory.stat as read (cache, rss, total_inactive_file…)
    pids_limit: int | None = None
    block_read_bytes: int = 0
    block_write_bytes: int = 0
