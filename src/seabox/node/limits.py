"""A container's cgroup limits from its size, and changing them while it runs (`docker update --memory/--cpus`).

The size whose limits a container has is kept in its bundle (written at each start and each live
change), so the node knows, across agent restarts, whether its assignment asks for other limits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from seabox.errors import SeaboxError
from seabox.model.container import ContainerSpec
from seabox.model.sizes import get_size
from seabox.node.runtime.base import Limits
from seabox.node.runtime.runc_runtime import OciRuntime

log = logging.getLogger(__name__)

_MARKER = "size"  # bundle file: the size whose limits the container runs with
GVISOR_PIDS_FACTOR = 4
GVISOR_PIDS_OVERHEAD = 256


def gvisor_host_pids(pids: int) -> int:
    """The host pids cap of a gVisor sandbox whose tenant may run pids processes.

    The cgroup counts host processes: gVisor's ptrace platform runs one per address space of the
    sandbox, next to the Sentry's and gofer's own threads, so the cap leaves room for those.
    """
    return pids * GVISOR_PIDS_FACTOR + GVISOR_PIDS_OVERHEAD


def limits_of(spec: ContainerSpec) -> Limits:
    """The caps SPEC's size gives (its pids limit, if lower, caps processes)."""
    size = get_size(spec.size)
    pids = size.pids if spec.pids_limit is None else min(size.pids, spec.pids_limit)
    if spec.runtime_class == "gvisor":
        pids = gvisor_host_pids(pids)
    return Limits(size.memory_bytes, size.cpu_shares, size.cpus, pids)


def record(bundle: Path, size: str) -> None:
    """The container in BUNDLE now runs with SIZE's limits."""
    (bundle / _MARKER).write_text(size)


def applied(bundle: Path) -> str | None:
    """The size whose limits the container in BUNDLE runs with (None: started by an agent that kept no record)."""
    try:
        return (bundle / _MARKER).read_text().strip() or None
    except FileNotFoundError:
        return None


async def converge(runtime: OciRuntime, bundle: Path, cid: str, spec: ContainerSpec) -> tuple[str, str]:
    """Give the live container SPEC's size's limits if it has others; (the size in force after, why not SPEC's).

    A refusal (a gVisor container, or memory in use above the new limit) leaves it as it was. A container
    an agent started before sizes changed live has no record: it runs with the size it was started with,
    which its spec still holds (a running container's size could not change then).
    """
    current = applied(bundle)
    if current is None:
        record(bundle, spec.size)
        return spec.size, ""
    if current == spec.size:
        return current, ""
    try:
        await runtime.update(cid, limits_of(spec))
    except SeaboxError as exc:
        log.warning("changing %s to size %s failed: %s", cid[:12], spec.size, exc.message)
        return current, exc.message
    record(bundle, spec.size)
    return spec.size, ""
