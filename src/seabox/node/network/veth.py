"""A container's link: the veth pair from its tenant bridge into its netns, where the peer is eth0."""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from seabox.errors import Conflict, RuntimeFailure
from seabox.node.network import links, netns
from seabox.model.ipam import mac_address
from seabox.node.network.names import NetNames

CONTAINER_IFNAME = "eth0"
DEFAULT_ROUTE = "0.0.0.0/0"


def ensure(
    ipr: IPRoute,
    names: NetNames,
    container_id: str,
    netns_path: Path,
    bridge_index: int,
    ip: IPv4Address,
    prefixlen: int,
    gateway: IPv4Address,
    mtu: int,
) -> None:
    """Create or adopt the container's veth pair and converge both ends; the netns must exist."""
    name = names.veth(container_id)
    tag = names.veth_tag(container_id)
    mac = mac_address(ip)
    host = links.lookup(ipr, name)
    if host is not None:
        links.claim(ipr, host, tag)
    with IPRoute(use_socket=netns.netlink_socket(netns_path)) as ns:
        peer = links.lookup(ns, CONTAINER_IFNAME)
        if host is None or peer is None or peer.get("link") != host["index"]:
            # Half a pair, or a pair that does not join these two ends: start again.
            if host is not None:
                links.delete(ipr, host["index"])
            if peer is not None:
                links.delete(ns, peer["index"])
            host, peer = _create_pair(ipr, ns, name, netns_path, mac)
            links.claim(ipr, host, tag)
        peer_index: int = peer["index"]
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        if peer.get("address") != mac or peer.get("mtu") != mtu:
            ns.link("set", index=peer_index, address=mac, mtu=mtu)
        links.ensure_address(ns, peer_index, ip, prefixlen)
        ns.link("set", index=peer_index, state="up")
        ns.route("replace", dst=DEFAULT_ROUTE, gateway=str(gateway), oif=peer_index)
    ipr.link("set", index=host["index"], master=bridge_index, mtu=mtu, state="up")
    # Hairpin: a frame may leave by the port it came in on, as when a replica reaches its own service's VIP
    # and is DNAT'd back to itself (node/network/lb_rules.py).
    ipr.brport("set", index=host["index"], mode=1)


def delete(ipr: IPRoute, names: NetNames, container_id: str) -> None:
    """Remove the container's pair (both ends go together) unless the name belongs to someone else."""
    host = links.lookup(ipr, names.veth(container_id))
    if host is None:
        return
    alias = host.get("ifalias")
    if alias and alias != names.veth_tag(container_id):
        raise Conflict(f"link {host.get('ifname')} belongs to {alias!r}")
    links.delete(ipr, host["index"])


def _create_pair(ipr: IPRoute, ns: IPRoute, name: str, netns_path: Path, mac: str) -> tuple[Any, Any]:
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        # The peer is born inside the netns as eth0: no rename, no name clash on the host.
        ipr.link(
            "add",
            ifname=name,
            kind="veth",
            peer={"ifname": CONTAINER_IFNAME, "net_ns_fd": fd, "address": mac},
        )
    finally:
        os.close(fd)
    host = links.lookup(ipr, name)
    peer = links.lookup(ns, CONTAINER_IFNAME)
    if host is None or peer is None:
        raise RuntimeFailure(f"veth {name} disappeared right after creation")
    return host, peer
