"""Kernel settings the node network needs (IPv4 forwarding; on tenant links IPv6 off, linkdown routes ignored, ARP
for own addresses only), via /proc/sys."""

from __future__ import annotations

from pathlib import Path

from seabox.errors import RuntimeFailure

PROC_SYS = Path("/proc/sys")


def ensure(key: str, value: str) -> None:
    """Set /proc/sys/<key> to value unless it already holds it."""
    path = PROC_SYS / key
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except OSError as exc:
        raise RuntimeFailure(f"cannot set {key}={value}: {exc}") from exc


def enable_ip_forward() -> None:
    """Let the host route between tenant bridges and its uplinks (filtered by the nft table)."""
    ensure("net/ipv4/ip_forward", "1")


def disable_ipv6(ifname: str) -> None:
    """Give the link no IPv6 address, so tenants reach the host over IPv4 only, where the rules apply."""
    ensure(f"net/ipv6/conf/{ifname}/disable_ipv6", "1")


def ignore_routes_with_linkdown(ifname: str) -> None:
    """Let the host skip the link's routes while it has no carrier (a bridge without a port up)."""
    ensure(f"net/ipv4/conf/{ifname}/ignore_routes_with_linkdown", "1")


def arp_for_own_addresses(ifname: str) -> None:
    """Answer ARP on the link only for its own addresses, and ask with one of them: a tenant bridge then never
    claims, with the gateway's MAC that every node's bridge shares, an address of another link (a SNAT port's)."""
    ensure(f"net/ipv4/conf/{ifname}/arp_ignore", "1")
    ensure(f"net/ipv4/conf/{ifname}/arp_announce", "2")


def loose_reverse_path(ifname: str) -> None:
    """Take packets on the link from any routable source (the kernel uses the larger of this and conf/all)."""
    ensure(f"net/ipv4/conf/{ifname}/rp_filter", "2")
