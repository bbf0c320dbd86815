"""What a tenant's containers and volumes hold on their nodes, measured there for `docker system df`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from seabox.errors import NotFound, UpstreamError
from seabox.model.container import Container
from seabox.model.tenant import Tenant
from seabox.model.volume import Volume
from seabox.services.links import NodeLinks
from seabox.services.placement import Placer

# measurements a tenant's request runs at once (each walks up to disk_usage.WALK_LIMIT entries on its node)
PARALLEL = 4


@dataclass
class Usage:
    """Bytes by container id and by volume name; what could not be measured (its node down) is missing."""

    containers: dict[str, int] = field(default_factory=dict)
    volumes: dict[str, int] = field(default_factory=dict)


class DiskUsage:
    """One measurement per tenant at a time: a second request waits for the first rather than walking
    the same trees again beside it."""

    def __init__(self, links: NodeLinks, placer: Placer) -> None:
        self.links = links
        self.placer = placer
        self._running: dict[str, asyncio.Lock] = {}

    async def measure(self, tenant: Tenant, containers: list[Container], volumes: list[Volume]) -> Usage:
        lock = self._running.setdefault(tenant.id, asyncio.Lock())
        async with lock:
            usage = Usage()
            gate = asyncio.Semaphore(PARALLEL)

            async def one(out: dict[str, int], key: str, node: str | None,
                          read: Callable[[], Awaitable[int]]) -> None:
                if not node or self.placer.is_down(node):
                    return
                async with gate:
                    try:
                        out[key] = await read()
                    except (NotFound, UpstreamError):  # no data there, or its node went away meanwhile
                        return

            jobs = [one(usage.containers, c.id, c.status.node, self._layer(c)) for c in containers]
            jobs += [one(usage.volumes, v.name, v.node, self._volume(tenant, v)) for v in volumes]
            await asyncio.gather(*jobs)
        return usage

    def _layer(self, c: Container) -> Callable[[], Awaitable[int]]:
        return lambda: self.links.get(c.status.node or "").layer_size(c.id)

    def _volume(self, tenant: Tenant, v: Volume) -> Callable[[], Awaitable[int]]:
        return lambda: self.links.get(v.node).volume_size(tenant.id, v.name)
