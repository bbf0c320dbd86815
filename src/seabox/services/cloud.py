"""Wires the store, event bus, the link to the node and tenant services into one object the APIs share."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from seabox.config import ServerConfig
from seabox.controllers.event_retention import EventRetention
from seabox.protocol.link import NodeLink
from seabox.services.containers import ContainerService
from seabox.services.events import EventBus
from seabox.services.images import ImageService
from seabox.services.volumes import VolumeService
from seabox.store.db import open_engine
from seabox.store.repo import Store


@dataclass
class Cloud:
    """Everything a request handler may use."""

    cfg: ServerConfig
    store: Store
    bus: EventBus
    node: NodeLink
    images: ImageService
    volumes: VolumeService
    containers: ContainerService
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, cfg: ServerConfig, node: NodeLink) -> Cloud:
        store = Store(open_engine(cfg.db_url))
        bus = EventBus(store)
        images = ImageService(store, node, bus)
        volumes = VolumeService(store, node, bus)
        containers = ContainerService(cfg, store, node, bus, images, volumes)
        return cls(cfg, store, bus, node, images, volumes, containers)

    async def start(self) -> None:
        """Start the controller loops."""
        self._loops.append(asyncio.create_task(EventRetention(self.store, self.cfg.events).run()))

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self.node.close()
