"""Which registry hosts a pull may reach: loopback, link-local and internal addresses are refused
unless the operator allows the host, and every host is pinned to the addresses checked here (where
the registry sends the pull next is checked by the node's pull egress table: node/network/pull_egress.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from seabox.errors import InvalidArgument, UpstreamError
from seabox.node.images.confine import NO_HOSTS
from seabox.node.network.pull_egress import Destination, is_internal

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


@dataclass(frozen=True)
class Pin:
    """The addresses a registry's name was checked to have; a command run under it resolves only those."""

    name: str
    hosts_file: Path | None  # None when the host is an address literal (nothing to resolve)

    def command(self, argv: list[str], cgroup: Path) -> list[str]:
        """argv, run in the pull CGROUP with /etc/hosts mapping the name to its checked addresses (see confine)."""
        hosts = str(self.hosts_file) if self.hosts_file is not None else NO_HOSTS
        return [sys.executable, "-m", "seabox.node.images.confine", str(cgroup), hosts, "--", *argv]

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
        addresses = await _resolve(name)
    except (OSError, UnicodeError) as exc:
        log.info("registry %s does not resolve: %s", host, exc)
        raise unreachable(host) from None
    if not may_be_internal and any(is_internal(ipaddress.ip_address(a)) for a in addresses):
        raise refused(host)
    hosts_file.write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n" + "".join(f"{a}\t{name}\n" for a in addresses)
    )
    return Pin(name, hosts_file)


async def _resolve(name: str) -> list[str]:
    """The addresses NAME resolves to, each once, without a zone (OSError or UnicodeError if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


async def allowed_destinations(allowed: set[str]) -> tuple[Destination, ...]:
    """The internal addresses (and ports) of the hosts in ALLOWED, which pulls may reach (the pull
    egress table refuses every other internal one). A name without a port allows every port of it."""
    found: set[Destination] = set()
    for host in sorted(allowed):
        name = host_name(host)
        tail = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, digits = tail.rpartition(":")
        port = int(digits) if colon and digits.isdecimal() and name != host else None
        try:
            addresses = [str(ipaddress.ip_address(name))]
        except ValueError:
            try:
                addresses = await _resolve(name)
            except (OSError, UnicodeError) as exc:
                log.info("allowed registry %s does not resolve: %s", host, exc)
                continue
        found.update(Destination(a, port) for a in addresses if is_internal(ipaddress.ip_address(a)))
    return tuple(sorted(found, key=Destination.key))
