"""Wires the store, event bus, local node agent and tenant services into one object the APIs share."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from seabox.config import ServerConfig
from seabox.controllers.event_retention import EventRetention
from seabox.node.agent import NodeAgent
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
    agent: NodeAgent
    images: ImageService
    volumes: VolumeService
    containers: ContainerService
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, cfg: ServerConfig) -> Cloud:
        store = Store(open_engine(cfg.db_url))
        bus = EventBus(store)
        agent = NodeAgent(cfg)
        images = ImageService(store, agent, bus)
        volumes = VolumeService(store, agent, bus)
        containers = ContainerService(cfg, store, agent, bus, images, volumes)
        return cls(cfg, store, bus, agent, images, volumes, containers)

    async def start(self) -> None:
        """Re-adopt what outlived the previous process and repair the rest; start the controller loops."""
        await self.containers.adopt()
        self._loops.append(asyncio.create_task(EventRetention(self.store, self.cfg.events).run()))

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self.containers.close()
        await self.agent.close()
