"""Tenant bridges on this node: one per tenant (named by the node's NetNames), up, holding the tenant's gateway
address, its services' VIPs and their backends' neighbour entries."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seabox.errors import Conflict, RuntimeFailure
from seabox.node.network import links, sysctl
from seabox.model.ipam import mac_address
from seabox.node.network.names import NetNames

VIP_PREFIXLEN = 32
NUD_PERMANENT = 0x80  # linux/neighbour.h


def ensure(
    ipr: IPRoute, names: NetNames, tenant_index: int, gateway: IPv4Address, prefixlen: int, mtu: int,
    vips: Iterable[IPv4Address] = (),
) -> int:
    """Create or adopt the tenant's bridge and converge it; returns its ifindex."""
    name = names.bridge(tenant_index)
    link = links.lookup(ipr, name)
    if link is None:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        link = links.lookup(ipr, name)
        if link is None:
            raise RuntimeFailure(f"bridge {name} vanished while being created")
    kind = link.get(("linkinfo", "kind"))
    if kind != "bridge":
        raise Conflict(f"link {name} exists and is a {kind}, not a bridge")
    links.claim(ipr, link, names.link_tag)
    index: int = link["index"]
    # Before it goes up, so the host never gets an IPv6 address tenants could reach it by.
    sysctl.disable_ipv6(name)
    # Another node on this host may hold the same tenant subnet on its bridge: while this one has
    # no running port, the host must route the subnet to the other one, not here.
    sysctl.ignore_routes_with_linkdown(name)
    sysctl.arp_for_own_addresses(name)  # not for its SNAT port's addresses (node/network/snat_port.py)
    # A fixed MAC keeps the gateway's neighbour entries valid as container ports come and go.
    ipr.link("set", index=index, address=mac_address(gateway), mtu=mtu)
    converge_addresses(ipr, index, gateway, prefixlen, vips)
    ipr.link("set", index=index, state="up")
    return index



def converge_addresses(
    ipr: IPRoute, index: int, gateway: IPv4Address, prefixlen: int, vips: Iterable[IPv4Address] = ()
) -> None:
    """Leave exactly the gateway (gateway/prefixlen) and vips (each a /32) as the bridge's IPv4 addresses: the
    node answers ARP for each VIP on the bridge, so the tenant's containers reach its services on-link."""
    wanted = {(str(gateway), prefixlen), *((str(vip), VIP_PREFIXLEN) for vip in vips)}
    present = set()
    for addr in ipr.addr("dump", index=index, family=socket.AF_INET):
        key = (addr.get("address"), addr["prefixlen"])
        if key in wanted:
            present.add(key)
        else:
            ipr.addr("del", index=index, address=key[0], prefixlen=key[1])
    for address, length in sorted(wanted - present, key=lambda k: k[1]):  # the gateway, the subnet's route, first
        ipr.addr("add", index=index, address=address, prefixlen=length)


def converge_neighbours(ipr: IPRoute, index: int, ips: Iterable[IPv4Address]) -> None:
    """Leave exactly ips as the bridge's permanent neighbours, each at its container's MAC (derived from its
    address, as every container's is). The node sends a service's DNAT'd frames to backends by them: its own
    ARP for a container on another node would go unanswered, as the answer is addressed to the gateway MAC
    that every node's bridge shares, and so stays on the backend's node."""
    wanted = {str(ip) for ip in ips}
    for entry in ipr.neigh("dump", ifindex=index, family=socket.AF_INET):
        address = entry.get("NDA_DST")
        if entry["state"] & NUD_PERMANENT and address not in wanted:
            ipr.neigh("del", ifindex=index, dst=address)
    for address in sorted(wanted):
        ipr.neigh("replace", ifindex=index, dst=address, lladdr=mac_address(IPv4Address(address)),
                  state=NUD_PERMANENT)  # fmt: skip
