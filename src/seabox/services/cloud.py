"""Wires the store, event bus, node links, placement and tenant services into one object the APIs share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from dataclasses import dataclass, field

from seabox.billing.accounts import Accounts
from seabox.config import ServerConfig
from seabox.controllers import crons as cron_controller
from seabox.controllers.event_retention import EventRetention
from seabox.controllers.function_pool import POOL_LEASE_TTL_FACTOR, FunctionPool
from seabox.controllers.leased import LeasedPass
from seabox.controllers.node_health import NodeHealth
from seabox.controllers.services import LEASE as SERVICES_LEASE
from seabox.controllers.services import ServiceController
from seabox.services.containers import ContainerService
from seabox.services.crons import CronService
from seabox.services.events import EventBus
from seabox.services.exec import ExecService
from seabox.services.fips import FipService
from seabox.services.function_calls import CallGateway
from seabox.services.function_exec import Executor
from seabox.services.function_http import HttpExecutor
from seabox.services.function_stdio import StdioExecutor
from seabox.services.functions import FunctionService
from seabox.services.images import ImageService
from seabox.protocol.link import NodeLink
from seabox.services.links import NodeLinks
from seabox.services.nodes import NodeHub
from seabox.services.placement import Placer
from seabox.services.disk_usage import DiskUsage
from seabox.services.security_groups import SecurityGroupService
from seabox.services.services import ServiceService
from seabox.services.volumes import VolumeService
from seabox.store.billing import BillingStore
from seabox.store.crons import CronStore
from seabox.store.db import open_engine
from seabox.store.exec_sessions import ExecSessions
from seabox.store.fips import FipStore
from seabox.store.functions import FunctionStore
from seabox.store.leases import Lease, Leases
from seabox.store.nodes import NodeStore
from seabox.store.notify import Notifier
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store
from seabox.store.security_groups import SecurityGroupStore
from seabox.store.services import ServiceStore

SPEND_EVERY = 5.0  # seconds between passes stopping what runs of tenants past a stopping spend limit
INVOICES_EVERY = 300.0  # seconds between passes issuing the invoices of ended months
RETENTION_LEASE_TTL = 60.0  # seconds another server waits to prune events after their pruner died
SERVICES_EVERY = 0.5  # seconds between the services controller's passes (each reconciles for a while)
SERVICES_LEASE_TTL = 10.0


def server_name() -> str:
    """This server process's name in leases and exec sessions: host, process and a random part."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


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
    exec: ExecService
    notifier: Notifier
    server: str  # this process's name among the servers on the database
    quotas: QuotaStore
    fips: FipService
    security_groups: SecurityGroupService
    services: ServiceService
    crons: CronService
    functions: FunctionService
    calls: CallGateway
    function_pool: FunctionPool
    accounts: Accounts
    disk_usage: DiskUsage
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, cfg: ServerConfig, local: NodeLink | None = None) -> Cloud:
        """The control plane on cfg's database; LOCAL is the embedded server's own node, if it has one."""
        store = Store(open_engine(cfg.db_url))
        nodes = NodeStore(store.engine)
        links = NodeLinks(nodes, cfg.nodes.down_after, local)
        notifier = Notifier(store.engine)
        bus = EventBus(store, notifier)
        quotas = QuotaStore(store.engine)
        images = ImageService(store, links, bus, quotas, cfg.quotas)
        volumes = VolumeService(store, links, bus, cfg.quotas)
        placer = Placer(cfg, store, nodes)
        fips = FipService(cfg, store, FipStore(store.engine), quotas, bus)
        accounts = Accounts(store, BillingStore(store.engine))
        containers = ContainerService(cfg, store, links, placer, bus, images, volumes, fips, quotas, accounts)
        hub = NodeHub(store, nodes, bus, containers)
        server = server_name()
        exec_ = ExecService(ExecSessions(store.engine), containers, notifier, server)
        security_groups = SecurityGroupService(store, SecurityGroupStore(store.engine), bus, cfg.quotas)
        services = ServiceService(cfg, ServiceStore(store.engine), fips.fips, containers, bus)
        crons = CronService(cfg, store, CronStore(store.engine), containers, images, bus)
        function_store = FunctionStore(store.engine)
        http = HttpExecutor(cfg.functions, containers)
        executors: dict[str, Executor] = {"stdio": StdioExecutor(containers), "http": http}
        functions = FunctionService(function_store, images, bus, executors, cfg.quotas)
        calls = CallGateway(cfg.functions, function_store, executors, server)
        return cls(cfg, store, bus, nodes, links, images, volumes, containers, hub, exec_, notifier, server,
                   quotas=quotas, fips=fips, security_groups=security_groups, services=services, crons=crons,
                   functions=functions, calls=calls,
                   function_pool=FunctionPool(store, function_store, http),
                   accounts=accounts, disk_usage=DiskUsage(links, placer))

    async def start(self) -> None:
        """Start the change relay, the exec sessions' upkeep and the controller passes (one server at a time each)."""
        await asyncio.to_thread(self.accounts.apply_price_file, self.cfg.data_dir / "prices.toml")
        leases = Leases(self.store.engine)
        health = NodeHealth(self.cfg, self.store, self.nodes, self.containers.placer, self.bus)
        beat = self.cfg.nodes.heartbeat_interval
        retention = EventRetention(self.store, self.cfg.events)
        passes = {
            "node-health": (LeasedPass(leases, "node-health", self.server, beat, 3 * beat), health.check),
            "event-retention": (LeasedPass(leases, "event-retention", self.server, self.cfg.events.prune_interval,
                                           RETENTION_LEASE_TTL), retention.prune),
            SERVICES_LEASE: (LeasedPass(leases, SERVICES_LEASE, self.server, SERVICES_EVERY, SERVICES_LEASE_TTL),
                             ServiceController(self.cfg, self.services, self.bus, leases).run),
            "crons": (LeasedPass(leases, "crons", self.server, cron_controller.EVERY, cron_controller.LEASE_TTL),
                      cron_controller.CronController(self.crons).tick),
            "function-calls": (LeasedPass(leases, "function-calls", self.server, self.cfg.functions.prune_interval,
                                          3 * self.cfg.functions.prune_interval), self.calls.prune),
            "invoices": (LeasedPass(leases, "invoices", self.server, INVOICES_EVERY, 2 * INVOICES_EVERY),
                         self._issue_invoices),
            "spend-limits": (LeasedPass(leases, "spend-limits", self.server, SPEND_EVERY, 3 * SPEND_EVERY),
                             self._stop_over_limit),
            "function-pool": (LeasedPass(leases, "function-pool", self.server, self.cfg.functions.pool_interval,
                                         POOL_LEASE_TTL_FACTOR * self.cfg.functions.pool_interval),
                              self.function_pool.reconcile),
        }
        for name, (leased, once) in passes.items():
            self._loops.append(asyncio.create_task(leased.run(once), name=name))
        self._loops.append(asyncio.create_task(self.bus.relay(), name="change-relay"))
        self._loops.append(asyncio.create_task(self.exec.run(), name="exec-sessions"))
        self._loops.append(asyncio.create_task(self.calls.renew(), name="function-call-leases"))

    async def _issue_invoices(self, _lease: Lease) -> None:
        """Issue what ended months owe (an invoice is written once: a second server issuing it too changes nothing)."""
        await asyncio.to_thread(self.accounts.issue_due)

    async def _stop_over_limit(self, _lease: Lease) -> None:
        """Stop the running containers of each tenant past a spend limit that stops them (level-triggered)."""
        for tenant_id in await asyncio.to_thread(self.accounts.over_limit):
            tenant = self.store.tenant_by_id(tenant_id)
            for c in self.store.list_containers(tenant_id):
                if c.spec.desired == "running":
                    await self.containers.stop(tenant, c.id, timeout=c.spec.stop_timeout)

    async def close(self) -> None:
        await self.calls.close()
        await self.function_pool.executor.close()
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self.notifier.close()
        for link in self.links:
            await link.close()
