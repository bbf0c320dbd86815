"""Wires the store, event bus, node links, placement and tenant services into one object the APIs share."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from seabox.config import ServerConfig
from seabox.controllers.event_retention import EventRetention
from seabox.controllers.node_health import NodeHealth
from seabox.services.containers import ContainerService
from seabox.services.events import EventBus
from seabox.services.images import ImageService
from seabox.protocol.link import NodeLink
from seabox.services.links import NodeLinks
from seabox.services.nodes import NodeHub
from seabox.services.placement import Placer
from seabox.services.volumes import VolumeService
from seabox.store.db import open_engine
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store


@dataclass
class Cloud:
    """Everything a request handler may use."""

    cfg: ServerConfig
    store: Store
    bus: EventBus
    nodes: NodeStore
    links: NodeLinks
    images: ImageService
    volumes: VolumeService
    containers: ContainerService
    hub: NodeHub
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, cfg: ServerConfig, local: NodeLink | None = None) -> Cloud:
        """The control plane on cfg's database; LOCAL is the embedded server's own node, if it has one."""
        store = Store(open_engine(cfg.db_url))
        nodes = NodeStore(store.engine)
        links = NodeLinks(nodes, cfg.nodes.down_after, local)
        bus = EventBus(store)
        images = ImageService(store, links, bus)
        volumes = VolumeService(store, links, bus)
        placer = Placer(cfg, store, nodes)
        containers = ContainerService(cfg, store, links, placer, bus, images, volumes)
        hub = NodeHub(store, nodes, bus, containers)
        return cls(cfg, store, bus, nodes, links, images, volumes, containers, hub)

    async def start(self) -> None:
        """Start the controller loops."""
        self._loops.append(asyncio.create_task(EventRetention(self.store, self.cfg.events).run()))
        health = NodeHealth(self.cfg, self.store, self.nodes, self.containers.placer, self.bus)
        self._loops.append(asyncio.create_task(health.run(), name="node-health"))

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        for link in self.links:
            await link.close()
