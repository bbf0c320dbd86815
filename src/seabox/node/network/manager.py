"""NodeNetwork: converges this node's tenant bridges, VXLAN overlays, container netns/veths, nftables table
(security groups, FIP NAT, load-balanced services) and the floating IPs on its public interface."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyroute2 import IPRoute

from seabox.config import NetworkConfig
from seabox.errors import NotFound
from seabox.model import ipam
from seabox.model.firewall import Firewall
from seabox.model.ports import PortMapping
from seabox.node.network import (
    bridge, egress, fip_rules, fw_rules, lb_load, lb_rules, links, netns, nft, public, snat_port, spoof_rules, sysctl,
    veth, vxlan,
)
from seabox.node.network.names import NetNames, check_container_id
from seabox.node.network.pull_egress import PullEgress

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Exposure:
    """What one container on this node shows the network: its floating IP and published ports, its firewall."""

    ip: IPv4Address
    fip: IPv4Address | None = None
    ports: tuple[PortMapping, ...] = ()
    firewall: Firewall | None = None  # None: the default policy


@dataclass(frozen=True)
class Service:
    """A load-balanced service of a tenant on this node: VIP:port to its backends (anywhere in the cluster);
    fip only on the node that holds it, which reaches the backends on this node (local) directly and the
    others from snat, the service's SNAT address (without one, made before services had it: only local),
    judging those by firewall, the backends' security groups."""

    id: str
    tenant_index: int
    vip: IPv4Address
    port: int
    algorithm: lb_rules.Algorithm = "roundrobin"
    backends: tuple[lb_rules.Target, ...] = ()
    fip: IPv4Address | None = None
    local: tuple[lb_rules.Target, ...] = ()
    snat: IPv4Address | None = None
    firewall: Firewall | None = None


class NodeNetwork:
    """Blocking and thread-safe; from asyncio call it through asyncio.to_thread (pyroute2's sync API
    refuses to run inside a running event loop).

    names are the node's host-global names (its table, link names): see node/identity.py.
    listeners are the control plane's HOST:PORT addresses, closed to tenants unless cfg.tenant_api
    names one; the nameservers of resolv_conf stay reachable on port 53.

    It works in the network namespace of the calling process: a node acting as a host of its own
    (a test's, or one per namespace) is a process started inside that namespace (nsenter --net).
    """

    def __init__(
        self,
        cfg: NetworkConfig,
        run_dir: Path,
        names: NetNames,
        *,
        gateway_services: Iterable[nft.GatewayService] = (),
        listeners: Iterable[str] = (),
        resolv_conf: Path = egress.RESOLV_CONF,
    ) -> None:
        self.cfg = cfg
        self.names = names
        self.table = names.table
        self.netns_dir = run_dir / "netns"
        self.gateway_services = tuple(gateway_services)
        self.listeners = tuple(listeners)
        self.resolv_conf = resolv_conf
        self.pulls = PullEgress(self.table, resolv_conf)  # where this node's image pulls may connect
        self._lock = threading.Lock()
        self._applied: nft.RuleSet | None = None
        self._exposures: dict[str, Exposure] | None = None
        self._fips: tuple[fip_rules.FloatingIP, ...] = ()
        self._guards: tuple[fw_rules.Guard, ...] = ()
        self._ports: tuple[spoof_rules.Port, ...] = ()
        self._holders: dict[IPv4Address, IPv4Address] | None = None  # fip -> container address, as applied
        self._services: dict[str, Service] = {}
        self._least: dict[str, tuple[lb_rules.Target, ...]] = {}  # leastconn: the backends in the map now
        self.fip_range = IPv4Network(cfg.fip_range)
        if cfg.public_interface is None:
            log.info("[network] public_interface is unset: this node serves no floating IPs or published ports")

    def tenant(self, tenant_index: int) -> TenantNet:
        """The tenant's addressing and bridge name (pure)."""
        subnet = ipam.tenant_subnet(self.cfg, tenant_index)
        return TenantNet(tenant_index, subnet, ipam.gateway(subnet), self.names.bridge(tenant_index))

    def netns_path(self, container_id: str) -> Path:
        check_container_id(container_id)
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
            bridge_index = self._tenant_bridge(ipr, tenant)
            if pid is None:
                netns.create(path)
            else:
                netns.adopt(path, pid)
            veth.ensure(
                ipr, self.names, container_id, path, bridge_index, ip, tenant.subnet.prefixlen, tenant.gateway,
                self.cfg.tenant_mtu,
            )
        return Attachment(path, ip, tenant.gateway, ipam.mac_address(ip), tenant.subnet.prefixlen)

    def ensure_tenant_overlay(
        self, tenant_index: int, local_ip: IPv4Address, remote_ips: Iterable[IPv4Address]
    ) -> None:
        """Span the tenant's network to the nodes at remote_ips: its VXLAN device (VNI vxlan_vni_base +
        index, from local_ip, this node's underlay address) on its bridge, flooding to exactly those
        addresses; the bridge and table are made if missing. The same call again changes nothing."""
        tenant = self.tenant(tenant_index)
        overlay = self._overlay(tenant_index, local_ip)
        remotes = {IPv4Address(ip) for ip in remote_ips} - {overlay.local}
        with self._lock, IPRoute() as ipr:
            bridge_index = self._tenant_bridge(ipr, tenant)
            # the table takes the VNI's frames only from remotes before the device can receive any
            self._apply_rules(ipr, {tenant_index: remotes}, only_if_changed=True)
            index = vxlan.ensure(ipr, self.names, overlay, bridge_index)
            vxlan.converge_peers(ipr, index, remotes)

    def remove_tenant_overlay(self, tenant_index: int) -> None:
        """Take the tenant's VXLAN device away (its network stays on this node alone); nothing to do if gone."""
        name = self.names.vxlan(tenant_index)
        with self._lock, IPRoute() as ipr:
            link = links.lookup(ipr, name)
            if link is None:
                return
            links.claim(ipr, link, self.names.link_tag)  # Conflict for another node's device
            links.delete(ipr, link["index"])
            self._apply_rules(ipr, only_if_changed=True)

    def reconcile_overlays(self, local_ip: IPv4Address, peers: Mapping[int, Iterable[IPv4Address]]) -> None:
        """Converge every overlay: peers maps each tenant spanning nodes to the other nodes' underlay
        addresses; this node's VXLAN devices of any other tenant are removed."""
        overlays = {index: self._overlay(index, local_ip) for index in peers}  # bad input: before any change
        with self._lock, IPRoute() as ipr:
            for link in links.owned(ipr, self.names):
                if link.vxlan and link.tenant_index not in overlays:
                    links.delete(ipr, link.index)
            self._apply_rules(ipr, only_if_changed=True)
        for index, remotes in peers.items():
            self.ensure_tenant_overlay(index, overlays[index].local, remotes)

    def detach(self, container_id: str) -> None:
        """Remove the container's veth pair and netns; nothing to do if they are gone."""
        path = self.netns_path(container_id)
        with self._lock:
            with IPRoute() as ipr:
                veth.delete(ipr, self.names, container_id)
            netns.remove(path)

    def reconcile(self, tenant_indexes: set[int], container_ids: set[str]) -> None:
        """Adopt what is desired, remove our bridges (with their VXLAN devices), veths and netns files that
        are not, re-apply the table."""
        tenants = [self.tenant(index) for index in sorted(tenant_indexes)]
        for container_id in container_ids:
            check_container_id(container_id)
        with self._lock:
            with IPRoute() as ipr:
                for link in links.owned(ipr, self.names):
                    if link.tenant_index is not None:
                        if link.tenant_index not in tenant_indexes:
                            links.delete(ipr, link.index)
                    elif link.container_id not in container_ids:
                        links.delete(ipr, link.index)
                sysctl.enable_ip_forward()
                for tenant in tenants:
                    self._ensure_bridge(ipr, tenant)
                self._apply_rules(ipr)
            for name in netns.names(self.netns_dir):
                if name not in container_ids:
                    netns.remove(self.netns_dir / name)

    def expose(self, exposures: Mapping[str, Exposure]) -> None:
        """Converge floating IPs, published ports and security groups to exposures (container id -> what it
        shows; containers absent show nothing): the table in one transaction, then the FIP addresses on
        the public interface, then conntrack entries of FIPs that moved. The same call again changes nothing."""
        desired = dict(exposures)
        if desired == self._exposures:
            return
        fips, guards = self._compile(desired)
        with self._lock, IPRoute() as ipr:
            self._fips, self._guards = fips, guards
            self._ports = tuple(spoof_rules.Port(self.names.veth(cid), e.ip) for cid, e in sorted(desired.items()))
            self._apply_rules(ipr, only_if_changed=True)
            self._exposures = desired
            interface = self.cfg.public_interface
            if interface is None:
                return
            holders = {f.fip: f.ip for f in fips}
            removed: set[IPv4Address] = set()
            try:
                removed = self._announce(ipr, set(holders))
            except NotFound:
                self._exposures = None  # tried again with the next batch
            # after a restart every FIP is checked; then those whose holder changed
            before = self._holders if self._holders is not None else {}
            changed = {fip for fip in {*before, *holders} if before.get(fip) != holders.get(fip) or self._holders is None}
            if changed | removed:
                public.forget_stale_flows(sorted(changed | removed), holders)
            self._holders = holders

    def balance(self, services: Sequence[Service], *, apply: bool = True) -> None:
        """Converge the load-balanced services to services (those absent are removed): the table in one
        transaction, then the VIPs on the tenants' bridges and the services' FIPs on the public interface.
        Connections already made stay with their backend (conntrack). The same call again changes nothing.
        Without apply, the services are only recorded, for the next change of the table to carry them (a
        restarted agent's first table then never lacks them)."""
        desired: dict[str, Service] = {}
        for s in services:
            tenant = self.tenant(s.tenant_index)
            if s.vip not in tenant.subnet or s.vip in (tenant.gateway, tenant.subnet.network_address,
                                                       tenant.subnet.broadcast_address):  # fmt: skip
                log.error("service %s: VIP %s is not a host address of its tenant subnet %s: not served",
                          s.id, s.vip, tenant.subnet)  # fmt: skip
                continue
            outside = [t for t in s.backends if t.ip not in tenant.subnet]
            if outside:
                log.error("service %s: backends %s are outside its tenant subnet %s: left out", s.id,
                          ", ".join(str(t.ip) for t in outside), tenant.subnet)  # fmt: skip
                s = replace(s, backends=tuple(t for t in s.backends if t.ip in tenant.subnet),
                            local=tuple(t for t in s.local if t.ip in tenant.subnet))  # fmt: skip
            if s.fip is not None and (self.cfg.public_interface is None or s.fip not in self.fip_range):
                log.error("service %s: FIP %s is outside fip_range %s, or this node has no public_interface: "
                          "not served", s.id, s.fip, self.fip_range)  # fmt: skip
                s = replace(s, fip=None)
            if s.snat is not None and (s.snat not in tenant.subnet or s.snat in (tenant.gateway, s.vip)):
                log.error("service %s: SNAT address %s is not a free host address of its tenant subnet %s: its FIP "
                          "reaches the backends on this node only", s.id, s.snat, tenant.subnet)  # fmt: skip
                s = replace(s, snat=None)
            desired[s.id] = s
        if not apply:
            with self._lock:
                self._services = desired
            return
        with self._lock, IPRoute() as ipr:
            self._services = desired
            self._least = {sid: chosen for sid, chosen in self._least.items()
                           if sid in desired and set(chosen) <= set(desired[sid].backends)}  # fmt: skip
            self._apply_rules(ipr, only_if_changed=True)
            for link in links.owned(ipr, self.names):
                if link.bridge:
                    tenant = self.tenant(link.tenant_index)
                    bridge.converge_addresses(ipr, link.index, tenant.gateway, tenant.subnet.prefixlen,
                                              self._vips(tenant.index))  # fmt: skip
                    self._converge_ports(ipr, tenant, link.index)
            if self.cfg.public_interface is not None:
                try:
                    self._announce(ipr, set(self._holders or {}))
                except NotFound:
                    pass  # logged; tried again with the next call

    def rebalance(self) -> bool:
        """Leastconn: keep in each such service's map only its backends with the fewest open connections (as
        conntrack counts them now); one transaction if that changed. Returns whether it did."""
        with self._lock:
            services = [s for s in self._services.values() if s.algorithm == "leastconn" and len(s.backends) > 1]
        if not services:
            return False
        addresses = [(s.vip, s.port) for s in services] + [(s.fip, s.port) for s in services if s.fip is not None]
        counts = lb_load.open_connections(addresses)
        with self._lock, IPRoute() as ipr:
            changed = False
            for s in services:
                current = self._services.get(s.id)
                if current != s:  # changed meanwhile: the next pass reads it again
                    continue
                chosen = lb_load.least_loaded(s.backends, counts)
                if self._least.get(s.id, s.backends) != chosen:
                    self._least[s.id] = chosen
                    changed = True
            if changed:
                self._apply_rules(ipr, only_if_changed=True)
            return changed

    def _backend_ips(self, tenant_index: int) -> set[IPv4Address]:
        return {t.ip for s in self._services.values() if s.tenant_index == tenant_index for t in s.backends}

    def _served_fip(self, s: Service) -> IPv4Address | None:
        """The service's FIP if this node serves it (a container's FIP here wins: logged by _compile)."""
        return None if s.fip in {f.fip for f in self._fips} else s.fip

    def _snat_addresses(self, tenant_index: int) -> set[IPv4Address]:
        """The SNAT addresses of the tenant's services whose FIPs this node serves."""
        return {s.snat for s in self._services.values()
                if s.tenant_index == tenant_index and s.snat is not None and self._served_fip(s) is not None}  # fmt: skip

    def _converge_ports(self, ipr: IPRoute, tenant: TenantNet, index: int) -> None:
        """The bridge's neighbour entries for the tenant's backends, and its SNAT port."""
        bridge.converge_neighbours(ipr, index, self._backend_ips(tenant.index))
        snat_port.converge(ipr, self.names, tenant.index, index, self._snat_addresses(tenant.index), self.cfg.tenant_mtu)

    def _vips(self, tenant_index: int) -> set[IPv4Address]:
        return {s.vip for s in self._services.values() if s.tenant_index == tenant_index}

    def _announce(self, ipr: IPRoute, container_fips: set[IPv4Address]) -> set[IPv4Address]:
        """Exactly the containers' and services' FIPs on the public interface; returns the addresses removed."""
        interface = self.cfg.public_interface
        assert interface is not None
        try:
            service_fips = {b.fip for b in self._balancers(self._bridges(ipr)) if b.fip is not None}
            return public.converge_addresses(ipr, interface, self.fip_range, container_fips | service_fips)
        except NotFound as exc:
            log.error("floating IPs are not announced: %s", exc.message)
            raise

    def _bridges(self, ipr: IPRoute) -> set[int]:
        """The tenant indexes whose bridges are on this node."""
        return {link.tenant_index for link in links.owned(ipr, self.names) if link.bridge}  # fmt: skip

    def _balancers(self, present: set[int]) -> tuple[lb_rules.Balancer, ...]:
        """The services of the tenants whose bridges are on this node, as the table serves them."""
        result = []
        for s in sorted(self._services.values(), key=lambda s: s.id):
            if s.tenant_index not in present:
                continue
            fip = self._served_fip(s)
            targets = self._least.get(s.id, s.backends) if s.algorithm == "leastconn" else s.backends
            if s.snat is None:  # no SNAT address: the FIP reaches the backends here only
                reached = tuple(t for t in targets if t in s.local) or s.local
            else:
                reached = targets
            result.append(lb_rules.Balancer(s.id, self.names.bridge(s.tenant_index), s.vip, s.port, s.algorithm,
                                            targets, fip, reached if fip is not None else (), s.snat, s.backends,
                                            s.local))  # fmt: skip
        return tuple(result)

    def _service_guards(self, balancers: tuple[lb_rules.Balancer, ...]) -> tuple[fw_rules.Guard, ...]:
        """The backends on other nodes that a FIP served here reaches, guarded by their security groups."""
        guarded = {g.ip for g in self._guards}
        guards: dict[IPv4Address, fw_rules.Guard] = {}
        compiled: dict[str, fw_rules.Allowed] = {}
        for b in balancers:
            s = self._services[b.id]
            if b.fip is None or s.firewall is None:
                continue
            key = s.firewall.model_dump_json()
            for t in b.fip_targets:
                if t not in b.local and t.ip not in guarded and t.ip not in guards:
                    if key not in compiled:
                        compiled[key] = fw_rules.compile_firewall(s.firewall, key)
                    guards[t.ip] = fw_rules.Guard(t.ip, compiled[key])
        return tuple(guards.values())

    def _compile(
        self, exposures: Mapping[str, Exposure]
    ) -> tuple[tuple[fip_rules.FloatingIP, ...], tuple[fw_rules.Guard, ...]]:
        """The FIPs this node serves and its firewalled containers; each firewall compiled once."""
        fips: dict[IPv4Address, fip_rules.FloatingIP] = {}
        guards: dict[IPv4Address, fw_rules.Guard] = {}
        compiled: dict[str, fw_rules.Allowed] = {}
        wanted = 0
        for cid, e in sorted(exposures.items()):
            if e.firewall is not None and e.ip not in guards:
                key = e.firewall.model_dump_json()
                if key not in compiled:
                    compiled[key] = fw_rules.compile_firewall(e.firewall, key)
                guards[e.ip] = fw_rules.Guard(e.ip, compiled[key])
            if e.fip is None:
                continue
            wanted += 1
            if e.fip not in self.fip_range:
                log.error("container %s: FIP %s is outside fip_range %s: not served", cid[:12], e.fip, self.fip_range)
            elif e.fip in fips:
                log.error("FIP %s is assigned to two containers here: served for the first only", e.fip)
            elif self.cfg.public_interface is not None:
                forwards = tuple(fip_rules.Forward(p.protocol, p.fip_port, p.container_port) for p in e.ports)
                fips[e.fip] = fip_rules.FloatingIP(e.fip, e.ip, forwards)
        if wanted and self.cfg.public_interface is None:
            log.warning("%d container(s) here hold a floating IP, but [network] public_interface is unset: "
                        "this node serves no floating IPs or published ports", wanted)  # fmt: skip
        return tuple(fips.values()), tuple(guards.values())

    def teardown(self) -> None:
        """Remove everything of this table: veths, bridges, netns files and their directory, the nft
        table, the FIP addresses on the public interface, and the pull egress table and cgroup."""
        with self._lock:
            with IPRoute() as ipr:
                for link in links.owned(ipr, self.names):
                    links.delete(ipr, link.index)
                if self.cfg.public_interface is not None and links.lookup(ipr, self.cfg.public_interface):
                    public.converge_addresses(ipr, self.cfg.public_interface, self.fip_range, set())
            for name in netns.names(self.netns_dir):
                netns.remove(self.netns_dir / name)
            netns.release_dir(self.netns_dir)
            nft.apply(nft.delete_node_batch(self.table))
        self.pulls.teardown()

    def _overlay(self, tenant_index: int, local_ip: IPv4Address) -> vxlan.Overlay:
        vni = vxlan.vni(self.cfg.vxlan_vni_base, tenant_index)
        return vxlan.Overlay(tenant_index, vni, IPv4Address(local_ip), self.cfg.vxlan_port, self.cfg.tenant_mtu)

    def _tenant_bridge(self, ipr: IPRoute, tenant: TenantNet) -> int:
        """The tenant's bridge, converged, and the table holding its chains; returns the bridge's ifindex."""
        link = links.lookup(ipr, tenant.bridge)
        if link is None or link.get("ifalias") != self.names.link_tag:
            return self._ensure_tenant(ipr, tenant)
        # A known tenant: the table already has its chains, but the resolvers may have changed since.
        index = self._ensure_bridge(ipr, tenant)
        self._apply_rules(ipr, only_if_changed=True)
        return index

    def _ensure_bridge(self, ipr: IPRoute, tenant: TenantNet) -> int:
        index = bridge.ensure(
            ipr, self.names, tenant.index, tenant.gateway, tenant.subnet.prefixlen, self.cfg.tenant_mtu,
            self._vips(tenant.index),
        )
        self._converge_ports(ipr, tenant, index)
        return index

    def _ensure_tenant(self, ipr: IPRoute, tenant: TenantNet) -> int:
        sysctl.enable_ip_forward()
        index = self._ensure_bridge(ipr, tenant)
        self._apply_rules(ipr)
        return index

    def _rules(self, ipr: IPRoute, pending: Mapping[int, set[IPv4Address]]) -> nft.RuleSet:
        """The table for what the kernel has (bridges, VXLAN devices and their flood lists), with the
        overlays in pending (tenant index -> peers) as they are about to be."""
        owned = links.owned(ipr, self.names)
        indexes = sorted(link.tenant_index for link in owned if link.bridge)
        tenants = []
        for index in indexes:
            tenant = self.tenant(index)
            tenants.append(nft.TenantRules(tenant.index, tenant.subnet, tenant.gateway, tenant.bridge))
        peers = {link.tenant_index: vxlan.flood_list(ipr, link.index) for link in owned
                 if link.vxlan and link.tenant_index is not None}  # fmt: skip
        peers.update(pending)
        overlays = tuple(
            nft.OverlayRules(vxlan.vni(self.cfg.vxlan_vni_base, index), tuple(sorted(remotes)))
            for index, remotes in sorted(peers.items())
        )
        policy = egress.policy(self.cfg, self.listeners, self.resolv_conf)
        balancers = self._balancers(set(indexes))
        return nft.RuleSet(
            self.table, tuple(tenants), self.gateway_services, policy, overlays, vxlan_port=self.cfg.vxlan_port,
            public_interface=self.cfg.public_interface, fips=self._fips,
            guards=self._guards + self._service_guards(balancers), ports=self._ports, balancers=balancers,
        )

    def _apply_rules(
        self, ipr: IPRoute, pending: Mapping[int, set[IPv4Address]] | None = None, *, only_if_changed: bool = False
    ) -> None:
        rules = self._rules(ipr, pending or {})
        if only_if_changed and rules == self._applied:
            return
        nft.apply(nft.build_batch(rules))
        self._applied = rules
