"""Tenant bridges on this node: one per tenant (named by the node's NetNames), up, holding the tenant's gateway address."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seabox.errors import Conflict, RuntimeFailure
from seabox.node.network import links, sysctl
from seabox.model.ipam import mac_address
from seabox.node.network.names import NetNames


def ensure(
    ipr: IPRoute, names: NetNames, tenant_index: int, gateway: IPv4Address, prefixlen: int, mtu: int
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
    # A fixed MAC keeps the gateway's neighbour entries valid as container ports come and go.
    ipr.link("set", index=index, address=mac_address(gateway), mtu=mtu)
    links.ensure_address(ipr, index, gateway, prefixlen)
    ipr.link("set", index=index, state="up")
    return index
