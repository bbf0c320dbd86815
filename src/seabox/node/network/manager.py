"""NodeNetwork: converges this node's tenant bridges, container netns/veths and nftables table to a desired state."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyroute2 import IPRoute

from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.node.network import bridge, egress, links, netns, nft, sysctl, veth


@dataclass(frozen=True)
class TenantNet:
    """A tenant's network on this node."""

    index: int
    subnet: IPv4Network
    gateway: IPv4Address
    bridge: str


@dataclass(frozen=True)
class Attachment:
    """What a container got: the netns its OCI runtime joins, and eth0's addressing inside it."""

    netns_path: Path
    ip: IPv4Address
    gateway: IPv4Address
    mac: str
    prefixlen: int


class NodeNetwork:
    """Blocking and thread-safe; from asyncio call it through asyncio.to_thread (pyroute2's sync API
    refuses to run inside a running event loop).

    listeners are the control plane's HOST:PORT addresses, closed to tenants unless cfg.tenant_api
    names one; the nameservers of resolv_conf stay reachable on port 53."""

    def __init__(
        self,
        cfg: NetworkConfig,
        run_dir: Path,
        table: str = "seabox",
        *,
        gateway_services: Iterable[nft.GatewayService] = (),
        listeners: Iterable[str] = (),
        resolv_conf: Path = egress.RESOLV_CONF,
    ) -> None:
        nft.check_table_name(table)
        self.cfg = cfg
        self.table = table
        self.netns_dir = run_dir / "netns"
        self.gateway_services = tuple(gateway_services)
        self.listeners = tuple(listeners)
        self.resolv_conf = resolv_conf
        self._lock = threading.Lock()
        self._applied: nft.RuleSet | None = None

    def tenant(self, tenant_index: int) -> TenantNet:
        """The tenant's addressing and bridge name (pure)."""
        subnet = ipam.tenant_subnet(self.cfg, tenant_index)
        return TenantNet(tenant_index, subnet, ipam.gateway(subnet), links.bridge_name(tenant_index))

    def netns_path(self, container_id: str) -> Path:
        links.check_container_id(container_id)
        return self.netns_dir / container_id

    def ensure_tenant(self, tenant_index: int) -> TenantNet:
        """Bridge up with its gateway address, and the table re-applied with this tenant's chains."""
        tenant = self.tenant(tenant_index)
        with self._lock, IPRoute() as ipr:
            self._ensure_tenant(ipr, tenant)
        return tenant

    def attach(
        self, container_id: str, tenant_index: int, ip: IPv4Address, *, pid: int | None = None
    ) -> Attachment:
        """Give the container a netns with eth0 = ip on its tenant bridge; the same call again changes nothing.

        With pid, the netns is the one that process (the container's init, created by its runtime)
        already has; without, a new one is made for the runtime to join.
        """
        path = self.netns_path(container_id)
        tenant = self.tenant(tenant_index)
        ipam.check_host(tenant.subnet, ip)
        with self._lock, IPRoute() as ipr:
            link = links.lookup(ipr, tenant.bridge)
            if link is None or link.get("ifalias") != links.bridge_tag(self.table):
                bridge_index = self._ensure_tenant(ipr, tenant)
            else:
                # A known tenant: converge the bridge; the table already has its chains, but the
                # resolvers may have changed since it was applied.
                bridge_index = bridge.ensure(ipr, self.table, tenant.index, tenant.gateway, tenant.subnet.prefixlen)
                if self._rules(ipr) != self._applied:
                    self._apply_rules(ipr)
            if pid is None:
                netns.create(path)
            else:
                netns.adopt(path, pid)
            veth.ensure(
                ipr, self.table, container_id, path, bridge_index, ip, tenant.subnet.prefixlen, tenant.gateway
            )
        return Attachment(path, ip, tenant.gateway, ipam.mac_address(ip), tenant.subnet.prefixlen)

    def detach(self, container_id: str) -> None:
        """Remove the container's veth pair and netns; nothing to do if they are gone."""
        path = self.netns_path(container_id)
        with self._lock:
            with IPRoute() as ipr:
                veth.delete(ipr, self.table, container_id)
            netns.remove(path)

    def reconcile(self, tenant_indexes: set[int], container_ids: set[str]) -> None:
        """Adopt what is desired, remove our bridges, veths and netns files that are not, re-apply the table."""
        tenants = [self.tenant(index) for index in sorted(tenant_indexes)]
        for container_id in container_ids:
            links.check_container_id(container_id)
        with self._lock:
            with IPRoute() as ipr:
                for link in links.owned(ipr, self.table):
                    if link.tenant_index is not None:
                        if link.tenant_index not in tenant_indexes:
                            links.delete(ipr, link.index)
                    elif link.container_id not in container_ids:
                        links.delete(ipr, link.index)
                sysctl.enable_ip_forward()
                for tenant in tenants:
                    bridge.ensure(ipr, self.table, tenant.index, tenant.gateway, tenant.subnet.prefixlen)
                self._apply_rules(ipr)
            for name in netns.names(self.netns_dir):
                if name not in container_ids:
                    netns.remove(self.netns_dir / name)

    def teardown(self) -> None:
        """Remove everything of this table: veths, bridges, netns files and their directory, the nft table."""
        with self._lock:
            with IPRoute() as ipr:
                for link in links.owned(ipr, self.table):
                    links.delete(ipr, link.index)
            for name in netns.names(self.netns_dir):
                netns.remove(self.netns_dir / name)
            netns.release_dir(self.netns_dir)
            nft.apply(nft.delete_batch(self.table))

    def _ensure_tenant(self, ipr: IPRoute, tenant: TenantNet) -> int:
        sysctl.enable_ip_forward()
        index = bridge.ensure(ipr, self.table, tenant.index, tenant.gateway, tenant.subnet.prefixlen)
        self._apply_rules(ipr)
        return index

    def _rules(self, ipr: IPRoute) -> nft.RuleSet:
        indexes = sorted(link.tenant_index for link in links.owned(ipr, self.table) if link.tenant_index is not None)
        tenants = []
        for index in indexes:
            tenant = self.tenant(index)
            tenants.append(nft.TenantRules(tenant.index, tenant.subnet, tenant.gateway, tenant.bridge))
        policy = egress.policy(self.cfg, self.listeners, self.resolv_conf)
        return nft.RuleSet(self.table, tuple(tenants), self.gateway_services, policy)

    def _apply_rules(self, ipr: IPRoute) -> None:
        rules = self._rules(ipr)
        nft.apply(nft.build_batch(rules))
        self._applied = rules
