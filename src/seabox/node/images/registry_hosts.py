"""Which registry hosts a pull may reach: loopback, link-local and internal addresses are refused
unless the operator allows the host, and every host is pinned to the addresses checked here."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from seabox.errors import InvalidArgument, UpstreamError

log = logging.getLogger(__name__)

# skopeo, like Docker, talks to Docker Hub's registry API on this host.
_DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"


def refused(host: str) -> InvalidArgument:
    """The one answer for a host a pull may not reach: it says nothing of what listens there."""
    return InvalidArgument(
        f"registry {host} is not allowed: images are pulled only from public registries "
        "(an operator may allow a host in config.toml, [registries] allow_internal)",
        field="image",
    )


def unreachable(host: str) -> UpstreamError:
    """The one answer for a registry that cannot be reached, whatever the cause (logged by the caller)."""
    return UpstreamError(f"cannot reach registry {host}")


def host_name(host: str) -> str:
    """The name or address in 'name:port', '[v6]:port' or a bare name."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdecimal() else host


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local, private (RFC 1918, ULA), shared (100.64/10), reserved or multicast."""
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class Pin:
    """The addresses a registry's name was checked to have; a command run under it resolves only those."""

    name: str
    hosts_file: Path | None  # None when the host is an address literal (nothing to resolve)

    def command(self, argv: list[str]) -> list[str]:
        """argv, run with /etc/hosts mapping the name to its checked addresses (see pinned_hosts)."""
        if self.hosts_file is None:
            return argv
        return [sys.executable, "-m", "seabox.node.images.pinned_hosts", str(self.hosts_file), "--", *argv]

    def release(self) -> None:
        if self.hosts_file is not None:
            self.hosts_file.unlink(missing_ok=True)


async def admit(host: str, allowed: set[str], hosts_file: Path) -> Pin:
    """Resolve HOST (HOST or HOST:PORT) and check its addresses; refused() or unreachable() if unfit.

    The pin's hosts file is written at HOSTS_FILE.
    """
    name = host_name(host)
    name = _DOCKER_HUB_API if name == _DOCKER_HUB else name
    may_be_internal = host in allowed or name in allowed
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is not None:
        if is_internal(literal) and not may_be_internal:
            raise refused(host)
        return Pin(name, None)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.info("registry %s does not resolve: %s", host, exc)
        raise unreachable(host) from None
    addresses = list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))
    if not may_be_internal and any(is_internal(ipaddress.ip_address(a)) for a in addresses):
        raise refused(host)
    hosts_file.write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n" + "".join(f"{a}\t{name}\n" for a in addresses)
    )
    return Pin(name, hosts_file)
