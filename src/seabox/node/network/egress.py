"""The egress policy of a node's tenants, from config and the host's resolv.conf: what stays closed, what stays open."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from seabox.config import NetworkConfig, ipv4_endpoint
from seabox.node.network.nft import EgressPolicy, Endpoint

# The node's resolvers (network.resolv_conf): they stay reachable on port 53, and the tenant resolvers forward to them.
RESOLV_CONF = Path("/etc/resolv.conf")
DNS_PORT = 53


def policy(cfg: NetworkConfig, listeners: Iterable[str], resolv_conf: Path) -> EgressPolicy:
    """Blocked ranges from cfg; the tenant API and the resolvers open; the control-plane listeners closed."""
    allowed: list[Endpoint] = []
    if cfg.tenant_api is not None:
        address, port = ipv4_endpoint(cfg.tenant_api)
        allowed.append(Endpoint(address, "tcp", port))
    for server in nameservers(resolv_conf):
        allowed += [Endpoint(server, "udp", DNS_PORT), Endpoint(server, "tcp", DNS_PORT)]
    closed = tuple(e for e in (listener_endpoint(a) for a in listeners) if e is not None)
    return EgressPolicy(tuple(IPv4Network(n) for n in cfg.blocked_egress), tuple(allowed), closed)


def nameservers(resolv_conf: Path) -> tuple[IPv4Address, ...]:
    """The IPv4 nameservers of resolv_conf a container can route to: a loopback stub is not one (nor IPv6)."""
    try:
        text = resolv_conf.read_text()
    except FileNotFoundError:
        return ()
    found: list[IPv4Address] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = IPv4Address(words[1])
            except ValueError:
                continue  # an IPv6 resolver: tenants have no IPv6
            if not (address.is_loopback or address.is_unspecified) and address not in found:
                found.append(address)
    return tuple(found)


def listener_endpoint(listen: str) -> Endpoint | None:
    """A control-plane listener HOST:PORT as a TCP endpoint to close, when HOST is an IPv4 address a
    container could route to. Loopback, 0.0.0.0 and names are the node's own: the input hook closes them."""
    try:
        address, port = ipv4_endpoint(listen)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return Endpoint(address, "tcp", port)
