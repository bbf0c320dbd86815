"""Pure address arithmetic for tenant networks: subnets, gateways, free host addresses and MACs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from seabox.config import NetworkConfig
from seabox.errors import Conflict, InvalidArgument

# Locally administered, unicast prefix for container and gateway MACs ("S" for Seabox).
MAC_PREFIX = (0x02, 0x53)
# The smallest tenant subnet that still holds a gateway and one container: /30.
MAX_PREFIXLEN = 30


def tenant_subnet(cfg: NetworkConfig, tenant_index: int) -> IPv4Network:
    """The tenant_index-th subnet of size cfg.tenant_prefixlen carved out of cfg.tenant_supernet."""
    supernet = IPv4Network(cfg.tenant_supernet)
    prefixlen = cfg.tenant_prefixlen
    if not supernet.prefixlen <= prefixlen <= MAX_PREFIXLEN:
        raise InvalidArgument(
            f"tenant_prefixlen {prefixlen} must lie between {supernet.prefixlen} and {MAX_PREFIXLEN}",
            field="tenant_prefixlen",
        )
    count = 1 << (prefixlen - supernet.prefixlen)
    if not 0 <= tenant_index < count:
        raise InvalidArgument(
            f"tenant index {tenant_index} is outside 0..{count - 1} of {supernet}",
            field="tenant_index",
        )
    size = 1 << (32 - prefixlen)
    return IPv4Network((int(supernet.network_address) + tenant_index * size, prefixlen))


def gateway(subnet: IPv4Network) -> IPv4Address:
    """The subnet's first host address, held by the tenant bridge on every node."""
    if subnet.prefixlen > MAX_PREFIXLEN:
        raise InvalidArgument(f"{subnet} has no room for a gateway and a container")
    return subnet.network_address + 1


def allocate(subnet: IPv4Network, used: set[IPv4Address]) -> IPv4Address:
    """The lowest host address after the gateway that is not in used."""
    first = int(gateway(subnet)) + 1
    last = int(subnet.broadcast_address) - 1
    for value in range(first, last + 1):
        candidate = IPv4Address(value)
        if candidate not in used:
            return candidate
    raise Conflict(f"tenant network full: {subnet}")


def allocate_top(subnet: IPv4Network, used: set[IPv4Address]) -> IPv4Address:
    """The highest host address (below broadcast, above the gateway) not in used: services' virtual IPs
    come from the top, so they meet containers' addresses (from the bottom) only in a full subnet."""
    first = int(gateway(subnet)) + 1
    for value in range(int(subnet.broadcast_address) - 1, first - 1, -1):
        candidate = IPv4Address(value)
        if candidate not in used:
            return candidate
    raise Conflict(f"tenant network full: {subnet}")


def check_host(subnet: IPv4Network, ip: IPv4Address) -> None:
    """Raise InvalidArgument unless ip is a container address of subnet (not network, gateway, broadcast)."""
    if ip not in subnet or ip in (subnet.network_address, gateway(subnet), subnet.broadcast_address):
        raise InvalidArgument(f"{ip} is not a container address of {subnet}", field="ip")


def mac_address(ip: IPv4Address) -> str:
    """A stable MAC for the interface holding ip: the Seabox prefix followed by the four address bytes."""
    return ":".join(f"{byte:02x}" for byte in (*MAC_PREFIX, *ip.packed))
