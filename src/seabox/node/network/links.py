"""Seabox's links: which belong to one node (marked by ifalias), lookups, claims and their addresses."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from ipaddress import IPv4Address
from socket import AF_INET
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seabox.errors import Conflict
from seabox.node.network.names import NetNames


@dataclass(frozen=True)
class OwnedLink:
    """A host link of one node: a tenant bridge, VXLAN device or SNAT port (tenant_index set), or a container veth."""

    name: str
    index: int
    tenant_index: int | None = None
    # None for a veth whose tag was never written (a crash between creating and tagging it).
    container_id: str | None = None
    vxlan: bool = False
    snat: bool = False

    @property
    def bridge(self) -> bool:
        return self.tenant_index is not None and not self.vxlan and not self.snat


def lookup(ipr: IPRoute, name: str) -> Any | None:
    """The link message for name, or None."""
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def claim(ipr: IPRoute, link: Any, tag: str) -> None:
    """Tag an untagged link as ours; raise Conflict if another owner's tag is on it."""
    alias = link.get("ifalias")
    if alias == tag:
        return
    if alias:
        raise Conflict(f"link {link.get('ifname')} belongs to {alias!r}, not {tag!r}")
    ipr.link("set", index=link["index"], ifalias=tag)


def delete(ipr: IPRoute, index: int) -> None:
    """Remove a link; one already gone is fine."""
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def ensure_address(ipr: IPRoute, index: int, ip: IPv4Address, prefixlen: int) -> None:
    """Leave ip/prefixlen as the link's only IPv4 address."""
    present = False
    for addr in ipr.addr("dump", index=index, family=AF_INET):
        if addr.get("address") == str(ip) and addr["prefixlen"] == prefixlen:
            present = True
        else:
            ipr.addr("del", index=index, address=addr.get("address"), prefixlen=addr["prefixlen"])
    if not present:
        ipr.addr("add", index=index, address=str(ip), prefixlen=prefixlen)


def owned(ipr: IPRoute, names: NetNames) -> list[OwnedLink]:
    """This node's bridges, VXLAN devices, SNAT ports and veths, plus untagged links that carry its names (crash
    leftovers)."""
    result: list[OwnedLink] = []
    tag = names.link_tag
    for link in ipr.link("dump"):
        name = link.get("ifname") or ""
        alias = link.get("ifalias") or None
        bridge, vxlan, snat = names.bridge_index(name), names.vxlan_index(name), names.snat_index(name)
        tenant_index = next((i for i in (bridge, vxlan, snat) if i is not None), None)
        if alias in (None, tag) and tenant_index is not None:
            result.append(OwnedLink(name, link["index"], tenant_index=tenant_index, vxlan=vxlan is not None,
                                    snat=snat is not None))
            continue
        if not names.is_veth(name):
            continue
        if alias is None:
            result.append(OwnedLink(name, link["index"]))
        elif alias.startswith(tag + ":"):
            result.append(OwnedLink(name, link["index"], container_id=alias[len(tag) + 1 :]))
    return result
