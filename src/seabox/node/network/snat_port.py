"""A tenant's SNAT port on this node: a veth pair on its bridge whose host end holds the SNAT addresses of the
tenant's services whose floating IPs this node serves.

A FIP's connection to a replica on another node leaves here from the service's SNAT address
(node/network/lb_rules.py), so the replica answers that address, not its own node's gateway: every node's
bridge holds the gateway with the same MAC, and an answer sent there would stay on the replica's node,
which has no conntrack entry to un-NAT it. The SNAT address is on a link of its own, with a MAC of its
own, which answers ARP for it alone (the bridge answers only for its own addresses:
sysctl.arp_for_own_addresses); the answer crosses the overlay back to this node's conntrack.
"""

from __future__ import annotations

import errno
import socket
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seabox.errors import RuntimeFailure
from seabox.node.network import links, public, sysctl
from seabox.node.network.names import NetNames

PREFIXLEN = 32


def converge(ipr: IPRoute, names: NetNames, tenant_index: int, bridge_index: int, addresses: set[IPv4Address],
             mtu: int) -> None:
    """Leave exactly addresses on the tenant's SNAT port, which exists only while there are any; each address
    added is announced, so replicas whose ARP cache has it at another node's port learn it is here."""
    name = names.snat(tenant_index)
    link = links.lookup(ipr, name)
    if link is not None:
        links.claim(ipr, link, names.link_tag)
    if not addresses:
        if link is not None:
            links.delete(ipr, link["index"])  # its peer goes with it
        return
    peer = links.lookup(ipr, names.snat_peer(tenant_index))
    if link is None or peer is None or peer.get("link") != link["index"]:
        for half in (link, peer):
            if half is not None:
                links.delete(ipr, half["index"])
        link, peer = _create(ipr, names, tenant_index)
    for ifname in (name, names.snat_peer(tenant_index)):
        sysctl.disable_ipv6(ifname)
    sysctl.arp_for_own_addresses(name)
    sysctl.loose_reverse_path(name)  # the answers come from replicas the host routes to over the bridge
    ipr.link("set", index=peer["index"], master=bridge_index, mtu=mtu, state="up")
    ipr.link("set", index=link["index"], mtu=mtu, state="up")
    present = set()
    for addr in ipr.addr("dump", index=link["index"], family=socket.AF_INET):
        address = IPv4Address(addr.get("address"))
        if address in addresses and addr["prefixlen"] == PREFIXLEN:
            present.add(address)
        else:
            ipr.addr("del", index=link["index"], address=str(address), prefixlen=addr["prefixlen"])
    for address in sorted(addresses - present):
        ipr.addr("add", index=link["index"], address=str(address), prefixlen=PREFIXLEN)
        public.announce(name, address)


def _create(ipr: IPRoute, names: NetNames, tenant_index: int) -> tuple[Any, Any]:
    name, peer_name = names.snat(tenant_index), names.snat_peer(tenant_index)
    try:
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer_name})
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
    link, peer = links.lookup(ipr, name), links.lookup(ipr, peer_name)
    if link is None or peer is None:
        raise RuntimeFailure(f"SNAT port {name} vanished while being created")
    for half in (link, peer):
        links.claim(ipr, half, names.link_tag)
    return link, peer
