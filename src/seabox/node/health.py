"""Health probing of this node's running containers: a TCP connect or an HTTP GET to the container's tenant
address every interval, rise/fall counting, and a callback when the outcome changes.

Probes leave from the node itself (their source is the tenant bridge's gateway address): the host's own
traffic does not pass the forward hook where security groups apply, and the answers come back as an
established flow on the bridge, so a container's security groups never hide it from its health check.
Bounds: one probe in flight per container (each container's probes run one after another in its own task),
each within a timeout shorter than the interval, and an HTTP answer read no further than its status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from seabox.model.health import HealthCheck

log = logging.getLogger(__name__)

TIMEOUT_SHARE = 0.8  # of the interval
MAX_TIMEOUT = 10.0
STATUS_LINE_MAX = 1024
Changed = Callable[[str, bool], Awaitable[None]]


def probe_timeout(check: HealthCheck) -> float:
    """How long one probe may take: under the interval, at most MAX_TIMEOUT."""
    return min(check.interval * TIMEOUT_SHARE, MAX_TIMEOUT)


async def probe(ip: IPv4Address, check: HealthCheck) -> bool:
    """One probe: the port accepts a TCP connection (tcp), or GET path answers 2xx or 3xx (http), in time."""
    try:
        return await asyncio.wait_for(_probe(ip, check), probe_timeout(check))
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False


async def _probe(ip: IPv4Address, check: HealthCheck) -> bool:
    reader, writer = await asyncio.open_connection(str(ip), check.port, limit=STATUS_LINE_MAX)
    try:
        if check.protocol == "tcp":
            return True
        request = (f"GET {check.path} HTTP/1.0\r\nHost: {ip}:{check.port}\r\nUser-Agent: seabox-health\r\n"
                   "Connection: close\r\n\r\n")  # fmt: skip
        writer.write(request.encode("ascii"))
        await writer.drain()
        line = await reader.readuntil(b"\n")
        parts = line.split(None, 2)
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass(frozen=True)
class Target:
    """What to probe for one container."""

    ip: IPv4Address
    check: HealthCheck


@dataclass
class _Probing:
    target: Target
    task: asyncio.Task[None]
    healthy: bool | None = None  # None: not decided yet (fewer than rise passes or fall failures so far)


class Prober:
    """One per node agent: probes each watched container, calls on_change(container id, healthy) when its
    outcome is decided or flips."""

    def __init__(self, on_change: Changed, probe_fn: Callable[[IPv4Address, HealthCheck], Awaitable[bool]] = probe):
        self.on_change = on_change
        self._probe = probe_fn
        self._probing: dict[str, _Probing] = {}

    def healthy(self, cid: str) -> bool | None:
        p = self._probing.get(cid)
        return None if p is None else p.healthy

    def watch(self, cid: str, target: Target) -> None:
        """Probe cid as target says; the same target again changes nothing, another starts over (undecided)."""
        p = self._probing.get(cid)
        if p is not None and p.target == target:
            return
        self.forget(cid)
        self._probing[cid] = _Probing(target, asyncio.create_task(self._loop(cid, target), name=f"health-{cid[:12]}"))

    def forget(self, cid: str) -> None:
        """Stop probing cid (it stopped, or has no health check any more); its outcome is forgotten."""
        p = self._probing.pop(cid, None)
        if p is not None:
            p.task.cancel()

    def watched(self) -> set[str]:
        return set(self._probing)

    async def close(self) -> None:
        probing, self._probing = self._probing, {}
        for p in probing.values():
            p.task.cancel()
        for p in probing.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await p.task

    async def _loop(self, cid: str, target: Target) -> None:
        check = target.check
        passes = failures = 0
        while True:
            started = time.monotonic()
            ok = await self._probe(target.ip, check)
            passes, failures = (passes + 1, 0) if ok else (0, failures + 1)
            p = self._probing.get(cid)
            if p is None or p.target != target:
                return
            decided = True if passes >= check.rise else False if failures >= check.fall else None
            if decided is not None and decided != p.healthy:
                p.healthy = decided
                log.info("container %s is %s (%s probe of port %d)", cid[:12], "healthy" if decided else "unhealthy",
                         check.protocol, check.port)  # fmt: skip
                try:
                    await self.on_change(cid, decided)
                except Exception:
                    log.exception("reporting the health of %s failed", cid[:12])
            await asyncio.sleep(max(0.0, check.interval - (time.monotonic() - started)))
