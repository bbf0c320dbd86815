"""Seabox's links: their names, which belong to one node table (marked by ifalias), and their addresses."""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from socket import AF_INET
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seabox.errors import Conflict, InvalidArgument

BRIDGE_PREFIX = "sbx-t"
VETH_PREFIX = "sbx"
VETH_ID_CHARS = 10
IFNAMSIZ = 15
CONTAINER_ID_RE = re.compile(r"[0-9a-f]{10,64}")
BRIDGE_RE = re.compile(r"sbx-t(\d+)")
VETH_RE = re.compile(r"sbx[0-9a-f]{10}")


@dataclass(frozen=True)
class OwnedLink:
    """A host link of this table: a tenant bridge (tenant_index set) or a container veth (container_id set)."""

    name: str
    index: int
    tenant_index: int | None = None
    # None for a veth whose tag was never written (a crash between creating and tagging it).
    container_id: str | None = None


def bridge_name(tenant_index: int) -> str:
    """The tenant's bridge: sbx-t<index>."""
    name = f"{BRIDGE_PREFIX}{tenant_index}"
    if tenant_index < 0 or len(name) > IFNAMSIZ:
        raise InvalidArgument(f"tenant index {tenant_index} does not make a bridge name", field="tenant_index")
    return name


def check_container_id(container_id: str) -> None:
    """Raise InvalidArgument unless container_id is 10 to 64 lowercase hex digits."""
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise InvalidArgument(
            f"container id must be 10-64 lowercase hex digits: {container_id!r}", field="container_id"
        )


def veth_name(container_id: str) -> str:
    """The host end of the container's veth: sbx<first 10 hex of the id>."""
    check_container_id(container_id)
    return f"{VETH_PREFIX}{container_id[:VETH_ID_CHARS]}"


def bridge_tag(table: str) -> str:
    return f"seabox:{table}"


def veth_tag(table: str, container_id: str) -> str:
    return f"seabox:{table}:{container_id}"


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


def owned(ipr: IPRoute, table: str) -> list[OwnedLink]:
    """This table's bridges and veths, plus untagged links that carry Seabox names (crash leftovers)."""
    result: list[OwnedLink] = []
    btag = bridge_tag(table)
    for link in ipr.link("dump"):
        name = link.get("ifname") or ""
        alias = link.get("ifalias") or None
        bridge = BRIDGE_RE.fullmatch(name)
        if bridge and alias in (None, btag):
            result.append(OwnedLink(name, link["index"], tenant_index=int(bridge.group(1))))
            continue
        if not VETH_RE.fullmatch(name):
            continue
        if alias is None:
            result.append(OwnedLink(name, link["index"]))
        elif alias.startswith(btag + ":"):
            result.append(OwnedLink(name, link["index"], container_id=alias[len(btag) + 1 :]))
    return result
