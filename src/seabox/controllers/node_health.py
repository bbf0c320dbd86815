"""Node health: containers of a down node are lost (or placed again elsewhere), a draining node is emptied."""

from __future__ import annotations

import asyncio
import logging
import time

from seabox.config import ServerConfig
from seabox.errors import Conflict
from seabox.model.container import Container, StopRequest, movable
from seabox.model.event import ContainerEvent
from seabox.model.node import Node
from seabox.services.events import EventBus
from seabox.services.placement import Placer
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store

log = logging.getLogger(__name__)
HELD = ("running", "restarting", "created")  # what a node may still be doing with a container


class NodeHealth:
    """One pass per heartbeat interval; safe on several servers at once (moves are compare-and-set)."""

    def __init__(self, cfg: ServerConfig, store: Store, nodes: NodeStore, placer: Placer, bus: EventBus) -> None:
        self.cfg = cfg
        self.store = store
        self.nodes = nodes
        self.placer = placer
        self.bus = bus

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node health pass failed")
            await asyncio.sleep(self.cfg.nodes.heartbeat_interval)

    async def check(self) -> None:
        now = time.time()
        for node in self.nodes.list():
            state = node.state(now, self.cfg.nodes.down_after)
            if state == "down":
                await self._down(node, now)
            elif state == "draining":
                await self._drain(node)

    async def _down(self, node: Node, now: float) -> None:
        age = now - node.heartbeat_at.timestamp()
        for c in self.store.list_containers(node=node.name):
            if c.spec.desired != "running" or c.status.state not in HELD:
                continue
            if movable(c.spec) and await self._move(c, node.name, f"node {node.name} is down"):
                continue
            st = c.status.model_copy(update={"state": "lost", "pid": 0,
                                             "error": f"node {node.name} is down (no heartbeat for {age:.0f} s)"})
            self.store.save_status(c.id, st, [ContainerEvent(action="lost", attributes={"node": node.name})])
            await self.bus.notify()

    async def _drain(self, node: Node) -> None:
        """Move what can move; stop the rest (a drained node ends up running nothing)."""
        for c in self.store.list_containers(node=node.name):
            if c.spec.desired != "running":
                continue
            if movable(c.spec) and await self._move(c, node.name, f"node {node.name} is draining"):
                continue
            self.store.request_container(c.id, "stopped", StopRequest(signal=c.spec.stop_signal, timeout=c.spec.stop_timeout))
            await self.bus.notify()

    async def _move(self, c: Container, node: str, why: str) -> bool:
        try:
            target = self.placer.choose(c.tenant, c.spec.size, avoid=frozenset({node}))
        except Conflict as exc:
            log.info("%s: container %s stays: %s", why, c.id[:12], exc.message)
            return False
        st = c.status.model_copy(update={"state": "created", "pid": 0, "error": f"{why}: placed again on {target}"})
        if not self.store.move_container(c.id, node, target, st, [ContainerEvent(action="move",
                                                                                  attributes={"from": node, "to": target})]):
            return True  # another server moved it meanwhile
        self.store.request_container(c.id, "running")
        await self.bus.notify()
        log.info("%s: container %s placed again on %s", why, c.id[:12], target)
        return True
