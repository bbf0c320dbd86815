"""A tenant's VXLAN device on this node: one per tenant on its bridge, flooding to the other nodes' underlay addresses."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import IPRoute

from seabox.errors import Conflict, InvalidArgument, RuntimeFailure
from seabox.node.network import links
from seabox.node.network.names import NetNames

# An all-zero MAC in a VXLAN device's FDB is a flood entry: broadcasts, unknown unicast and
# multicast go to every such destination (`bridge fdb append 00:00:00:00:00:00 dev vx dst IP`).
FLOOD_MAC = "00:00:00:00:00:00"
VNI_LIMIT = 1 << 24


@dataclass(frozen=True)
class Overlay:
    """One tenant's VXLAN device as this node wants it."""

    tenant_index: int
    vni: int
    local: IPv4Address  # this node's underlay (advertised) address
    port: int
    mtu: int


def vni(base: int, tenant_index: int) -> int:
    """The tenant's VXLAN network identifier: base + its index, within VXLAN's 24 bits."""
    value = base + tenant_index
    if tenant_index < 0 or not 0 < value < VNI_LIMIT:
        raise InvalidArgument(
            f"tenant index {tenant_index} + vxlan_vni_base {base} is not a VXLAN id (1..{VNI_LIMIT - 1})",
            field="tenant_index",
        )
    return value


def ensure(ipr: IPRoute, names: NetNames, overlay: Overlay, bridge_index: int) -> int:
    """Create or adopt the tenant's VXLAN device as overlay says, on the bridge, up; returns its ifindex.

    A device whose VNI, local address or port differ is made again (the kernel cannot change them).
    """
    name = names.vxlan(overlay.tenant_index)
    link = links.lookup(ipr, name)
    if link is not None:
        links.claim(ipr, link, names.link_tag)
        kind = link.get(("linkinfo", "kind"))
        if kind != "vxlan":
            raise Conflict(f"link {name} exists and is a {kind}, not a vxlan device")
        if _settings(link) != (overlay.vni, str(overlay.local), overlay.port):
            links.delete(ipr, link["index"])
            link = None
    if link is None:
        ipr.link(
            "add",
            ifname=name,
            kind="vxlan",
            vxlan_id=overlay.vni,
            vxlan_local=str(overlay.local),
            vxlan_port=overlay.port,
            vxlan_learning=1,
            mtu=overlay.mtu,
        )
        link = links.lookup(ipr, name)
        if link is None:
            raise RuntimeFailure(f"vxlan device {name} vanished while being created")
        links.claim(ipr, link, names.link_tag)
    index: int = link["index"]
    ipr.link("set", index=index, master=bridge_index, mtu=overlay.mtu, state="up")
    return index


def flood_list(ipr: IPRoute, index: int) -> set[IPv4Address]:
    """The remote underlay addresses the device at index floods to."""
    return {
        IPv4Address(entry.get("NDA_DST"))
        for entry in ipr.fdb("dump", ifindex=index)
        if entry.get("NDA_LLADDR") == FLOOD_MAC and entry.get("NDA_DST")
    }


def converge_peers(ipr: IPRoute, index: int, remotes: set[IPv4Address]) -> None:
    """Make remotes the device's flood list; forget what it learned behind a peer that left."""
    present = flood_list(ipr, index)
    for remote in sorted(remotes - present):
        ipr.fdb("append", ifindex=index, lladdr=FLOOD_MAC, dst=str(remote))
    gone = {str(remote) for remote in present - remotes}
    if not gone:
        return
    for entry in ipr.fdb("dump", ifindex=index):
        if entry.get("NDA_DST") in gone:
            ipr.fdb("del", ifindex=index, lladdr=entry.get("NDA_LLADDR"), dst=entry.get("NDA_DST"))


def _settings(link: Any) -> tuple[int | None, str | None, int | None]:
    data = ("linkinfo", "data")
    return link.get((*data, "vxlan_id")), link.get((*data, "vxlan_local")), link.get((*data, "vxlan_port"))
