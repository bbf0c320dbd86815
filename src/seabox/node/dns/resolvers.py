"""This node's tenant resolvers, converged to each batch: one per tenant it holds, started on the tenant's
gateway, fed the tenant's records, stopped when the tenant leaves the node.

Upstreams are the IPv4 nameservers of the node's resolv.conf that containers could reach by
themselves (egress.nameservers: not loopback), read again with every batch; the resolver opens no
way to any other resolver of the host.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from ipaddress import IPv4Network
from pathlib import Path

from seabox.errors import SeaboxError
from seabox.node.dns.forward import DNS_PORT, Forwarder
from seabox.node.dns.server import TenantResolver
from seabox.node.dns.zone import Zone
from seabox.node.network import egress, nft
from seabox.node.network.manager import NodeNetwork
from seabox.protocol.assignments import HostsEntry

log = logging.getLogger(__name__)

# What the node's table must open on every tenant gateway for the resolvers.
GATEWAY_SERVICES = (nft.GatewayService("udp", DNS_PORT), nft.GatewayService("tcp", DNS_PORT))


def resolv_conf_text(network: NodeNetwork, tenant_index: int) -> str:
    """A container's /etc/resolv.conf: its tenant's resolver, on the gateway."""
    return f"nameserver {network.tenant(tenant_index).gateway}\n"


class Resolvers:
    """The tenant resolvers of network's tenants, forwarding to the nameservers of resolv_conf."""

    def __init__(self, network: NodeNetwork, resolv_conf: Path, *, port: int = DNS_PORT) -> None:
        self.network = network
        self.resolv_conf = resolv_conf
        self.port = port
        # reverse names of any tenant address are answered here, never asked upstream
        self.reverse_scope = IPv4Network(network.cfg.tenant_supernet)
        self._servers: dict[int, TenantResolver] = {}

    async def converge(self, hosts: Mapping[int, list[HostsEntry]]) -> None:
        """Serve exactly the tenants of hosts (tenant index -> its entries), each with its entries as records.

        A resolver that cannot start (its address taken, its bridge failing) is logged and tried
        again at the next call.
        """
        forwarder = Forwarder(egress.nameservers(self.resolv_conf))
        for index in sorted(set(self._servers) - set(hosts)):
            await self._servers.pop(index).close()
        for index, entries in sorted(hosts.items()):
            zone = Zone.of(entries, self.reverse_scope)
            server = self._servers.get(index)
            if server is not None and server.ifindex == _ifindex(server.bridge):
                server.update(zone, forwarder)
                continue
            if server is not None:  # its bridge was made again since: the sockets are bound to the old one
                await self._servers.pop(index).close()
            await self._start(index, zone, forwarder)

    async def _start(self, index: int, zone: Zone, forwarder: Forwarder) -> None:
        try:
            tenant = self.network.tenant(index)
            server = TenantResolver(tenant.bridge, tenant.gateway, tenant.subnet, zone, forwarder, port=self.port)
            if _ifindex(tenant.bridge) is None:  # the tenant's first container here has not attached yet
                await asyncio.to_thread(self.network.ensure_tenant, index)
            await server.start()
        except (OSError, SeaboxError) as exc:
            log.error("tenant %d's resolver did not start (tried again with the next assignments): %s", index, exc)
            return
        self._servers[index] = server

    async def close(self) -> None:
        """Stop every resolver."""
        for index in sorted(self._servers):
            await self._servers.pop(index).close()


def _ifindex(ifname: str) -> int | None:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None
