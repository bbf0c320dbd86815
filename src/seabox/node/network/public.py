"""The node's public interface: its FIP addresses (each a /32, announced by gratuitous ARP) and the
conntrack entries a moved or removed FIP leaves behind."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network

from pyroute2 import Conntrack, IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from seabox.errors import NotFound
from seabox.node.network import links

log = logging.getLogger(__name__)

FIP_PREFIXLEN = 32
# conntrack status bits (linux/netfilter/nf_conntrack_common.h)
IPS_SRC_NAT = 1 << 4
IPS_DST_NAT = 1 << 5


def converge_addresses(
    ipr: IPRoute, interface: str, fip_range: IPv4Network, fips: set[IPv4Address]
) -> set[IPv4Address]:
    """Leave exactly fips as the interface's addresses inside fip_range (its other addresses stay);
    each address added is announced, so neighbours' ARP caches point here at once. Returns the
    addresses removed."""
    link = links.lookup(ipr, interface)
    if link is None:
        raise NotFound(f"public_interface {interface!r} does not exist on this node")
    index = link["index"]
    present, removed = set(), set()
    for addr in ipr.addr("dump", index=index, family=socket.AF_INET):
        address = IPv4Address(addr.get("address"))
        if address not in fip_range:
            continue
        if address in fips and addr["prefixlen"] == FIP_PREFIXLEN:
            present.add(address)
        else:
            ipr.addr("del", index=index, address=str(address), prefixlen=addr["prefixlen"])
            removed.add(address)
    for fip in sorted(fips - present):
        ipr.addr("add", index=index, address=str(fip), prefixlen=FIP_PREFIXLEN)
        announce(interface, fip)
    return removed


def announce(interface: str, fip: IPv4Address) -> None:
    """One unsolicited ARP for fip (or any address of interface); arping waits a second for answers that never
    come, so it is not awaited."""
    try:
        proc = subprocess.Popen(
            ["arping", "-U", "-c", "1", "-I", interface, str(fip)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:
        log.warning("cannot announce %s on %s (neighbours learn it when their ARP entry expires): %s",
                    fip, interface, exc)  # fmt: skip
        return
    threading.Thread(target=proc.wait, name=f"arping-{fip}", daemon=True).start()


def forget_stale_flows(fips: Iterable[IPv4Address], holders: Mapping[IPv4Address, IPv4Address]) -> int:
    """Delete the NAT'd conntrack entries of fips that no longer lead where holders (fip -> container
    address) says: DNAT'd flows to another container, and other containers' flows SNAT'd to the FIP.
    Their next packet is then a new connection, which the rules send to the new holder. The kernel
    filters the dump by FIP. Returns how many entries were deleted."""
    deleted = 0
    with Conntrack() as ct:
        stale = []
        for fip in fips:
            holder = holders.get(fip)
            for entry in ct.dump_entries(tuple_orig=NFCTAttrTuple(daddr=str(fip))):
                if entry.status & IPS_DST_NAT and _address(entry.tuple_reply.saddr) != holder:
                    stale.append(entry)
            for entry in ct.dump_entries(tuple_reply=NFCTAttrTuple(daddr=str(fip))):
                if entry.status & IPS_SRC_NAT and _address(entry.tuple_orig.saddr) != holder:
                    stale.append(entry)
        for entry in stale:
            try:
                ct.delete(entry)
                deleted += 1
            except NetlinkError:  # expired meanwhile
                continue
    return deleted


def _address(address: str | None) -> IPv4Address | None:
    return IPv4Address(address) if address else None
