"""The gvisor runtime class: containers run by runsc (gVisor's user-space kernel), each under its own conmon."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from seabox.errors import NotFound
from seabox.node.runtime import cgroups
from seabox.node.runtime.base import Limits
from seabox.node.runtime.runc import Runc
from seabox.node.runtime.runc_runtime import CONMON, OciRuntime

RUNSC = "/usr/bin/runsc"
NSENTER = "/usr/bin/nsenter"


class GvisorRuntime(OciRuntime):
    """runsc with host networking inside the container's own network namespace, or with none.

    Debian's runsc cannot set up a network namespace of its own on this kernel, so every runsc
    command and the container's conmon run inside the netns the node made (entered with nsenter,
    which keeps cgroups visible); runsc's control socket is an abstract unix socket, itself per
    network namespace, so start, kill, exec and delete must run there too. A container with
    network none has no such netns: its runsc commands run here with --network=none (the sandbox
    gets loopback only), the same flag on each (runsc sets the network up at start).
    """

    name = "gvisor"

    def __init__(
        self,
        state_dir: Path,
        netns_path: Callable[[str], Path],
        *,
        runsc: str = RUNSC,
        conmon: str = CONMON,
        log_size_max: int | None = None,
    ) -> None:
        def enter(cid: str) -> list[str]:
            path = netns_path(cid)
            return [NSENTER, f"--net={path}"] if path.exists() else []

        def flags(cid: str) -> list[str]:
            # the root mount is shared with the node (docker cp writes and reads it from the host), so the
            # Sentry revalidates what it caches instead of assuming it alone changes the rootfs
            return ["--network=host" if netns_path(cid).exists() else "--network=none", "--file-access=shared"]

        runtime = Runc(runsc, state_dir / "runsc", extra_args=flags, enter=enter, terminal_by_process_file=True)
        super().__init__(state_dir, runtime, conmon=conmon, log_size_max=log_size_max)

    async def update(self, cid: str, limits: Limits) -> None:
        """runsc has no `update`: the sandbox's cgroup, which holds every process of it (the Sentry and its
        gofer), takes the new caps directly. The host enforces them; the Sentry's own view of its total
        memory (/proc/meminfo inside) stays what it was when the sandbox booted."""
        if await self._runc.state(cid) is None:
            raise NotFound(f"no such container: {cid}")
        await asyncio.to_thread(cgroups.write_limits, cid, limits.memory_bytes, limits.cpu_shares, limits.cpus,
                                limits.pids)

    async def top(self, cid: str) -> list[tuple[int, str]]:
        """The processes inside the sandbox, as its Sentry lists them (`runsc ps`): gVisor's own pids
        and each process's name (the Sentry keeps no argv for ps). The host sees only the sandbox."""
        lines = (await self._runc.ps_table(cid)).splitlines()
        processes: list[tuple[int, str]] = []
        for line in lines[1:]:  # UID PID PPID C TTY STIME TIME CMD
            fields = line.split(None, 7)
            if len(fields) == 8 and fields[1].isdecimal():
                processes.append((int(fields[1]), fields[7]))
        return processes

    def known(self, cid: str) -> bool:
        root = self._runc.root
        return root.is_dir() and any(entry.name.startswith(cid) for entry in root.iterdir())
