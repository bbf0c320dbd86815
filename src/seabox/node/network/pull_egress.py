"""Where a node's image pulls may connect: a cgroup for skopeo and an nftables table that filters its sockets.

The image store resolves and pins the registry an image names, but the registry then chooses where
skopeo goes next (a blob redirect, a token realm). So every pull runs in one cgroup v2 directory
and this node's `<table>_pulls` table checks each connection its processes make, in the output hook,
on the address actually dialled: operator-allowed registries and the host's resolvers (port 53)
pass; internal addresses (INTERNAL_V4, INTERNAL_V6) and the node's own are refused with a TCP reset
or an ICMP error, the same answer whatever listens there; the rest (the public internet) passes.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

from seabox.errors import RuntimeFailure
from seabox.node.network.egress import RESOLV_CONF
from seabox.node.network.names import check_table_name
from seabox.node.network.nft import FAMILY, apply, delete_batch, table_exists

# Every range that is not the public internet: loopback, private, shared, link-local (the cloud
# metadata address), documentation, benchmarking, reserved and multicast; for IPv6 also the
# forms that embed an IPv4 address (mapped, NAT64, 6to4) and site-local.
INTERNAL_V4 = tuple(
    IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
    )
)
INTERNAL_V6 = tuple(
    IPv6Network(n)
    for n in (
        "::/127", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
        "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)
DNS_PORT = 53
CGROUP_ROOT = Path("/sys/fs/cgroup")  # nft names a cgroup by its path under here
_MOUNTINFO = Path("/proc/self/mountinfo")


def is_internal(address: IPv4Address | IPv6Address) -> bool:
    """Whether a pull may reach address only when the operator allowed its host."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    ranges: tuple[IPv4Network | IPv6Network, ...] = INTERNAL_V4 if isinstance(address, IPv4Address) else INTERNAL_V6
    return any(address in net for net in ranges)


@dataclass(frozen=True)
class Destination:
    """An address (and port; None for every port) a pull may reach although it is internal."""

    address: str
    port: int | None = None

    def key(self) -> tuple[str, int]:
        return self.address, -1 if self.port is None else self.port


def resolvers(resolv_conf: Path) -> tuple[IPv4Address | IPv6Address, ...]:
    """Every nameserver of resolv_conf, loopback stubs included (skopeo resolves as the host does)."""
    try:
        text = resolv_conf.read_text()
    except FileNotFoundError:
        return ()
    found: list[IPv4Address | IPv6Address] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = ip_address(words[1].partition("%")[0])
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return tuple(found)


def cgroup2_mount(mountinfo: Path = _MOUNTINFO) -> tuple[Path, int]:
    """Where the cgroup v2 hierarchy is mounted and the depth of that mount's root in it."""
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if tail and tail[0] == "cgroup2":
            root = fields[3]
            return Path(fields[4]), len([part for part in root.split("/") if part])
    raise RuntimeFailure(
        "this node has no cgroup v2 hierarchy (mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified): "
        "image pulls need one so that their connections can be checked"
    )


@dataclass(frozen=True)
class _Applied:
    cgroup_id: int
    resolvers: tuple[IPv4Address | IPv6Address, ...]
    allowed: frozenset[Destination]


class PullEgress:
    """The pull cgroup and `<table>_pulls` of one node; blocking and thread-safe (call through asyncio.to_thread)."""

    def __init__(self, table: str, resolv_conf: Path = RESOLV_CONF) -> None:
        self.table = f"{table}_pulls"
        check_table_name(self.table)
        self.resolv_conf = resolv_conf
        self._allowed: set[Destination] = set()
        self._applied: _Applied | None = None
        self._lock = threading.Lock()

    def ensure(self, allowed: tuple[Destination, ...] = ()) -> Path:
        """Let pulls reach ALLOWED from now on too; (re)build the cgroup and table if missing or stale.

        Returns the cgroup directory a pull's process joins before it connects anywhere.
        """
        with self._lock:
            self._allowed.update(allowed)
            mount, depth = cgroup2_mount()
            cgroup = mount / self.table
            cgroup.mkdir(exist_ok=True)
            want = _Applied(os.stat(cgroup).st_ino, resolvers(self.resolv_conf), frozenset(self._allowed))
            if want != self._applied or not table_exists(self.table):
                self._apply(self._script(os.path.relpath(cgroup, CGROUP_ROOT), depth + 1, want))
                self._applied = want
            return cgroup

    def teardown(self) -> None:
        """Remove the table and the cgroup (once no pull runs in it)."""
        with self._lock:
            apply(delete_batch(self.table))
            self._applied = None
            try:
                mount, _ = cgroup2_mount()
            except RuntimeFailure:
                return
            try:
                (mount / self.table).rmdir()
            except FileNotFoundError:
                pass

    def _script(self, cgroup: str, level: int, state: _Applied) -> str:
        # nft's JSON form cannot carry a cgroupv2 level, so this table is written in nft's own syntax;
        # every word in it is an address, a port or a name this module checked.
        v4 = [d for d in sorted(state.allowed, key=Destination.key) if ip_address(d.address).version == 4]
        v6 = [d for d in sorted(state.allowed, key=Destination.key) if ip_address(d.address).version == 6]
        t = self.table
        lines = [
            f"add table {FAMILY} {t}",
            f"delete table {FAMILY} {t}",
            f"add table {FAMILY} {t}",
            f"add chain {FAMILY} {t} output {{ type filter hook output priority 0; policy accept; }}",
            f"add chain {FAMILY} {t} pulls",
            f"add chain {FAMILY} {t} refuse",
            f'add rule {FAMILY} {t} output socket cgroupv2 level {level} "{cgroup}" jump pulls',
            f"add rule {FAMILY} {t} pulls ct state established,related accept",
        ]
        for family, allowed in (("ip", v4), ("ip6", v6)):
            for d in allowed:
                port = f" meta l4proto tcp th dport {d.port}" if d.port is not None else ""
                lines.append(f"add rule {FAMILY} {t} pulls {family} daddr {d.address}{port} accept")
        for server in state.resolvers:
            family = "ip" if server.version == 4 else "ip6"
            lines.append(
                f"add rule {FAMILY} {t} pulls {family} daddr {server} meta l4proto {{ tcp, udp }} th dport {DNS_PORT} accept"
            )
        ranges4 = ", ".join(str(n) for n in INTERNAL_V4)
        ranges6 = ", ".join(str(n) for n in INTERNAL_V6)
        lines += [
            f"add rule {FAMILY} {t} pulls ip daddr {{ {ranges4} }} jump refuse",
            f"add rule {FAMILY} {t} pulls ip6 daddr {{ {ranges6} }} jump refuse",
            f"add rule {FAMILY} {t} pulls fib daddr type local jump refuse",
            f"add rule {FAMILY} {t} refuse meta l4proto tcp reject with tcp reset",
            f"add rule {FAMILY} {t} refuse reject",
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _apply(script: str) -> None:
        try:
            proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"nft failed to run: {exc}") from exc
        if proc.returncode != 0:
            raise RuntimeFailure(f"nft rejected the pull egress table: {proc.stderr.strip()}")
