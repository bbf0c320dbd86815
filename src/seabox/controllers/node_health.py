"""Node health: containers of a down node are lost (or placed again elsewhere), a draining node is emptied."""

from __future__ import annotations

import logging
import time

from seabox.config import ServerConfig
from seabox.errors import Conflict
from seabox.model.container import Container, StopRequest, movable
from seabox.model.event import ContainerEvent
from seabox.model.node import Node
from seabox.services.events import EventBus
from seabox.services.placement import Placer
from seabox.store.leases import Lease
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store

log = logging.getLogger(__name__)
HELD = ("running", "paused", "restarting", "created")  # what a node may still be doing with a container


class NodeHealth:
    """One pass per heartbeat interval, on the server holding its lease (moves are compare-and-set too)."""

    def __init__(self, cfg: ServerConfig, store: Store, nodes: NodeStore, placer: Placer, bus: EventBus) -> None:
        self.cfg = cfg
        self.store = store
        self.nodes = nodes
        self.placer = placer
        self.bus = bus

    async def check(self, lease: Lease) -> None:
        """One pass; its writes are fenced by LEASE (a server that stalled past it writes nothing)."""
        now = time.time()
        for node in self.nodes.list():
            state = node.state(now, self.cfg.nodes.down_after)
            if state == "down":
                await self._down(node, now, lease)
            elif state == "draining":
                await self._drain(node, lease)

    async def _down(self, node: Node, now: float, lease: Lease) -> None:
        last_heard = node.heartbeat_at.timestamp()  # what ran there is billed up to here (billing.meter)
        age = now - last_heard
        for c in self.store.list_containers(node=node.name):
            if c.spec.desired != "running" or c.status.state not in HELD:
                continue
            if movable(c.spec) and await self._move(c, node.name, f"node {node.name} is down", lease, last_heard):
                continue
            st = c.status.model_copy(update={"state": "lost", "pid": 0,
                                             "error": f"node {node.name} is down (no heartbeat for {age:.0f} s)"})
            self.store.save_status(c.id, st, [ContainerEvent(action="lost", attributes={"node": node.name}, at=last_heard)], fence=lease)
            await self.bus.notify()

    async def _drain(self, node: Node, lease: Lease) -> None:
        """Move what can move; stop the rest (a drained node ends up running nothing)."""
        for c in self.store.list_containers(node=node.name):
            if c.spec.desired != "running":
                continue
            if movable(c.spec) and await self._move(c, node.name, f"node {node.name} is draining", lease):
                continue
            stop = StopRequest(signal=c.spec.stop_signal, timeout=c.spec.stop_timeout)
            self.store.request_container(c.id, "stopped", stop, fence=lease)
            await self.bus.notify()

    async def _move(self, c: Container, node: str, why: str, lease: Lease, at: float | None = None) -> bool:
        """Place C again on another node (False if none can take it); its run on NODE ended AT (None: now)."""
        try:
            target = self.placer.choose(c.tenant, c.spec.size, avoid=frozenset({node}))
        except Conflict as exc:
            log.info("%s: container %s stays: %s", why, c.id[:12], exc.message)
            return False
        st = c.status.model_copy(update={"state": "created", "pid": 0, "error": f"{why}: placed again on {target}"})
        moved = [ContainerEvent(action="move", attributes={"from": node, "to": target}, at=at)]
        if not self.store.move_container(c.id, node, target, st, moved, fence=lease):
            return True  # moved meanwhile (by a server that held the lease before)
        self.store.request_container(c.id, "running", fence=lease)
        await self.bus.notify()
        log.info("%s: container %s placed again on %s", why, c.id[:12], target)
        return True
