"""Leastconn's reading of the kernel: how many open connections conntrack holds per backend of a service."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from pyroute2 import Conntrack
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from seabox.node.network.lb_rules import Target
from seabox.node.network.public import IPS_DST_NAT

# TCP conntrack states of a connection still open: SYN_SENT, SYN_RECV, ESTABLISHED (a closing one, in
# FIN_WAIT or TIME_WAIT, no longer loads its backend)
OPEN_STATES = {1, 2, 3}


def open_connections(addresses: Iterable[tuple[IPv4Address, int]]) -> dict[Target, int]:
    """Per backend (its address and port after DNAT), the open TCP connections to any of addresses (a
    service's VIP:port, FIP:port); the kernel filters the dump by address."""
    counts: dict[Target, int] = {}
    with Conntrack() as ct:
        for address, port in addresses:
            for entry in ct.dump_entries(tuple_orig=NFCTAttrTuple(daddr=str(address))):
                if not entry.status & IPS_DST_NAT or entry.tuple_orig.dport != port:
                    continue
                if entry.protoinfo is None or entry.protoinfo.state not in OPEN_STATES:
                    continue
                target = Target(IPv4Address(entry.tuple_reply.saddr), int(entry.tuple_reply.sport))
                counts[target] = counts.get(target, 0) + 1
    return counts


def least_loaded(targets: tuple[Target, ...], counts: dict[Target, int]) -> tuple[Target, ...]:
    """The targets with the fewest open connections (all those tied, in their order; all when none are)."""
    if not targets:
        return ()
    fewest = min(counts.get(t, 0) for t in targets)
    return tuple(t for t in targets if counts.get(t, 0) == fewest)
