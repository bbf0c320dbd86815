"""`python -m bench fip` (root): a container through its floating IP against the same container by its private
address, the time for a 1,000-rule security group on 50 members to hold, and a FIP move to the first new
connection. Drives NodeNetwork directly with container netns, an "outside" netns on the public interface."""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench.results import report
from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.model.firewall import Firewall, FirewallRule
from seabox.model.ports import PortMapping
from seabox.node.network.manager import Attachment, Exposure, NodeNetwork
from seabox.node.network.names import NetNames
from tests.fixtures.public_net import accepting, ns_socket, outside_on_public, probe, serve

PID = os.getpid()
TABLE = f"seabox_bench_fip_{PID}"
PUBLIC = f"sbbpub{PID % 100000}"
PUBLIC_SUBNET = IPv4Network("203.0.113.24/29")
FIP_RANGE = IPv4Network("198.18.0.0/15")
FIP = IPv4Address("198.18.15.1")
TENANT = 1500 + PID % 50
CFG = NetworkConfig(public_interface=PUBLIC)
ROUNDS = int(os.environ.get("BENCH_FIP_ROUNDS", "5"))
MIB = int(os.environ.get("BENCH_FIP_MIB", "512"))
CONNECTS = int(os.environ.get("BENCH_FIP_CONNECTS", "300"))
MEMBERS, RULES, UPDATES, MOVES = 50, 1000, 20, 20
CHUNK = 1 << 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def sink(path: Path, port: int) -> Iterator[None]:
    """A TCP server in the container's netns that reads each connection to its end."""
    server = ns_socket(path)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)

    def drain(conn: socket.socket, _peer: tuple[str, int]) -> None:
        buf = bytearray(CHUNK)
        while conn.recv_into(buf):
            pass

    with accepting(server, drain):
        yield


def throughput(outside: Path, address: IPv4Address, port: int) -> float:
    """MB/s of MIB MiB sent from the outside netns to address:port."""
    data = b"x" * CHUNK
    with ns_socket(outside) as sock:
        sock.connect((str(address), port))
        start = time.perf_counter()
        for _ in range(MIB):
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the sink closes once it has read everything
        return MIB * CHUNK / 1e6 / (time.perf_counter() - start)


def connect_ms(outside: Path, address: IPv4Address, port: int) -> float:
    with ns_socket(outside) as sock:
        start = time.perf_counter()
        sock.connect((str(address), port))
        return (time.perf_counter() - start) * 1000


def open_private_path(address: IPv4Address, subnet: IPv4Network, outside: Path, via: IPv4Address) -> None:
    """Bench only: let the outside reach the container's private address (the table refuses it to tenants)."""
    subprocess.run(["nft", "insert", "rule", "inet", TABLE, "forward", "ip", "daddr", str(address), "accept"],
                   check=True)  # fmt: skip
    subprocess.run(["nsenter", f"--net={outside}", "ip", "route", "add", str(subnet), "via", str(via)], check=True)


def paths(net: NodeNetwork, c: Attachment, outside_path: Path, via: IPv4Address) -> list[tuple[str, str, str, str]]:
    port = 5201
    net.expose({c.netns_path.name: Exposure(c.ip, FIP, (PortMapping(container_port=port, fip_port=port),))})
    open_private_path(c.ip, ipam.tenant_subnet(CFG, TENANT), outside_path, via)
    fip_rates, private_rates, fip_conn, private_conn = [], [], [], []
    with sink(c.netns_path, port):
        throughput(outside_path, FIP, port)  # warm-up
        for _ in range(ROUNDS):  # interleaved, so that drift on a shared machine hits both alike
            fip_rates.append(throughput(outside_path, FIP, port))
            private_rates.append(throughput(outside_path, c.ip, port))
        for _ in range(CONNECTS):
            fip_conn.append(connect_ms(outside_path, FIP, port))
            private_conn.append(connect_ms(outside_path, c.ip, port))
    fr, pr = statistics.median(fip_rates), statistics.median(private_rates)
    fc, pc = statistics.median(fip_conn), statistics.median(private_conn)
    return [
        (f"TCP throughput, {MIB} MiB from outside, through the FIP (target >= 0.9x; peer: the private address)",
         f"{fr:.0f} MB/s", f"{pr:.0f} MB/s", f"{fr / pr:.2f}x"),
        ("TCP connect from outside, p50, through the FIP (peer: the private address)",
         f"{fc * 1000:.0f} µs", f"{pc * 1000:.0f} µs", f"{pc / fc:.2f}x (peer/ours)"),
    ]  # fmt: skip


def group(members: list[Attachment], client: IPv4Address, open_port: int | None) -> dict[str, Exposure]:
    """1,000 ingress rules (a port each, two remotes) for every member; open_port also lets client in."""
    rules = [FirewallRule(direction="ingress", protocol="tcp", port_min=20000 + i, port_max=20000 + i,
                          remotes=[f"198.51.100.{i % 250}/32", f"10.{i % 200}.0.0/16"]) for i in range(RULES)]
    if open_port is not None:
        rules[-1] = FirewallRule(direction="ingress", protocol="tcp", port_min=open_port, port_max=open_port,
                                 remotes=[f"{client}/32"])
    rules.append(FirewallRule(direction="egress", protocol="any", remotes=["0.0.0.0/0"]))
    wall = Firewall(rules=rules)
    return {m.netns_path.name: Exposure(m.ip, firewall=wall) for m in members}  # fmt: skip


def rule_holding(net: NodeNetwork, members: list[Attachment], client: Attachment) -> list[float]:
    """Seconds from handing the node a changed group until the change is seen by a new connection."""
    times = []
    net.expose(group(members, client.ip, None))
    for i in range(UPDATES):
        port = 7000 + i
        target = members[i * 7 % len(members)]
        with serve(target.netns_path, port, "m"):
            start = time.perf_counter()
            net.expose(group(members, client.ip, port))
            while probe(client.netns_path, target.ip, port, timeout=0.05) is None:
                if time.perf_counter() - start > 5:
                    raise RuntimeError("the rule never held")
            times.append(time.perf_counter() - start)
            net.expose(group(members, client.ip, None))
    return times


def fip_moves(net: NodeNetwork, a: Attachment, b: Attachment, outside: Path) -> list[float]:
    port = 8080
    ports = (PortMapping(container_port=port, fip_port=port),)
    times = []
    with serve(a.netns_path, port, "a"), serve(b.netns_path, port, "b"):
        for i in range(MOVES):
            holder, other = (a, b) if i % 2 else (b, a)
            label = "a" if holder is a else "b"
            start = time.perf_counter()
            net.expose({holder.netns_path.name: Exposure(holder.ip, FIP, ports),
                        other.netns_path.name: Exposure(other.ip)})  # fmt: skip
            while not (probe(outside, FIP, port, timeout=0.05) or "").startswith(label):
                if time.perf_counter() - start > 5:
                    raise RuntimeError("the FIP never moved")
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fip-") as tmp, ExitStack() as stack:
        outside = stack.enter_context(outside_on_public(Path(tmp) / "outside" / "ns", PUBLIC, PUBLIC_SUBNET,
                                                        FIP_RANGE))  # fmt: skip
        net = NodeNetwork(CFG, Path(tmp) / "run", NetNames.of_node(f"bench-fip-{PID}", TABLE))
        stack.callback(net.teardown)
        subnet = ipam.tenant_subnet(CFG, TENANT)
        attach = [net.attach(secrets.token_hex(32), TENANT, subnet.network_address + n) for n in range(2, 4 + MEMBERS)]
        rows = paths(net, attach[0], outside.path, outside.node_address)
        holding = rule_holding(net, attach[2:], attach[1])
        moves = fip_moves(net, attach[0], attach[1], outside.path)
    rows += [
        (f"security group of {RULES:,} rules on {MEMBERS} members: change to a new connection seeing it, p95 "
         "(target <= 1 s)", f"{pct(holding, 0.95) * 1000:.0f} ms", "-",
         f"p50 {statistics.median(holding) * 1000:.0f} ms, {UPDATES} updates"),
        ("FIP move between two containers to the first new connection reaching the new holder, p95 (target <= 1 s)",
         f"{pct(moves, 0.95) * 1000:.0f} ms", "-", f"p50 {statistics.median(moves) * 1000:.0f} ms, {MOVES} moves"),
    ]  # fmt: skip
    report("fip", rows, f"`python -m bench fip` ({ROUNDS} transfers and {CONNECTS} connects each, interleaved), "
           "on a 2-core machine.", (
        "One node's NodeNetwork (its nftables table, a tenant bridge, container netns) with an outside netns "
        "on its public interface (a veth). Throughput and connects go from the outside netns to a container "
        "(Python sockets, 1 MiB writes): through its FIP (ARP for the /32, DNAT of the published port, "
        "conntrack) against its private address, which the bench alone opens to the outside by one accept "
        "rule (the table refuses it otherwise). The group figure times `NodeNetwork.expose` of a group whose "
        "last rule changed (the whole table, ~2,000 disjoint set elements, replaced in one transaction) until "
        "a new connection that only the changed rule allows succeeds; the move figure times `expose` with the "
        "FIP on the other container until a new connection from outside reaches it.\n"
    ))
