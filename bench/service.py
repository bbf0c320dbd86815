"""`python -m bench service` (root): requests through a load-balanced service's VIP (nftables DNAT in the kernel)
against the same replica asked directly, from a client container on the same tenant network, in the same run.
Drives NodeNetwork directly with container netns."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

from bench.results import report
from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.node.network.lb_rules import Target
from seabox.node.network.manager import NodeNetwork, Service
from seabox.node.network.names import NetNames

T = TypeVar("T")
PID = os.getpid()
TABLE = f"seabox_bench_lb_{PID}"
TENANT = 1600 + PID % 50
CFG = NetworkConfig()
PORT = 8080
ROUNDS = int(os.environ.get("BENCH_SERVICE_ROUNDS", "5"))
REQUESTS = int(os.environ.get("BENCH_SERVICE_REQUESTS", "400"))  # sequential, per round and path
CLIENTS = int(os.environ.get("BENCH_SERVICE_CLIENTS", "4"))  # concurrent, for requests/s
SECONDS = float(os.environ.get("BENCH_SERVICE_SECONDS", "1.5"))  # per round and path
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)
REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n"
ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def replica_process(path: Path, ready: Any) -> None:
    """The replica, in a process of its own (no GIL shared with the clients) inside the container's netns:
    answers each connection's request with a 200 and closes, from a few threads."""
    enter(path)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", PORT))
    server.listen(512)

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(ANSWER)
                conn.recv(1)  # the client closes first: its side, not ours, holds TIME_WAIT (no reused-port stalls)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.set()
    threads[0].join()


@contextmanager
def http_replica(path: Path) -> Iterator[None]:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=replica_process, args=(path, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the replica did not start")
        yield
    finally:
        process.kill()
        process.join()


def enter(path: Path) -> None:
    """Move the calling thread (only it) into the netns at path: its sockets are then plain socket() calls."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def in_netns(path: Path, fn: Callable[[], T]) -> T:
    """fn's result, run in a thread inside the netns at path."""
    result: list[T] = []

    def run() -> None:
        enter(path)
        result.append(fn())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if not result:
        raise RuntimeError("the client thread failed")
    return result[0]


def request(address: IPv4Address) -> float:
    """One HTTP/1.0 request on a new connection (each one DNAT'd afresh through the VIP), closed by the client
    once the whole answer is in; its seconds. The calling thread is in the client's netns."""
    with socket.socket() as sock:
        start = time.perf_counter()
        sock.connect((str(address), PORT))
        sock.sendall(REQUEST)
        got = b""
        while len(got) < len(ANSWER) and (chunk := sock.recv(4096)):
            got += chunk
        elapsed = time.perf_counter() - start
    if got != ANSWER:
        raise RuntimeError(f"bad answer from {address}: {got!r}")
    return elapsed


def client_sysctls(path: Path) -> None:
    """The client netns (the bench's own) may reuse its TIME_WAIT ports: a connection per request at
    thousands per second would otherwise run out of them and stall both paths alike."""
    for key, value in (("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.ip_local_port_range", "10000 65000")):
        subprocess.run(["nsenter", f"--net={path}", "sysctl", "-qw", f"{key}={value}"], check=True)


def latencies(client: Path, address: IPv4Address) -> list[float]:
    """REQUESTS sequential requests from the client's netns."""
    return in_netns(client, lambda: [request(address) for _ in range(REQUESTS)])


def rate(client: Path, address: IPv4Address) -> float:
    """Requests per second of CLIENTS concurrent clients over SECONDS."""
    counts = [0] * CLIENTS
    deadline = time.perf_counter() + SECONDS

    def run(i: int) -> None:
        enter(client)
        while time.perf_counter() < deadline:
            request(address)
            counts[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp, ExitStack() as stack:
        net = NodeNetwork(CFG, Path(tmp) / "run", NetNames.of_node(f"bench-lb-{PID}", TABLE))
        stack.callback(net.teardown)
        subnet = ipam.tenant_subnet(CFG, TENANT)
        replica, client = (net.attach(secrets.token_hex(32), TENANT, subnet.network_address + n) for n in (2, 3))
        client_sysctls(client.netns_path)
        vip = subnet.network_address + 200
        net.balance([Service("bench", TENANT, vip, PORT, "roundrobin", (Target(replica.ip, PORT),))])
        vip_latency: list[float] = []
        direct_latency: list[float] = []
        vip_rates: list[float] = []
        direct_rates: list[float] = []
        stack.enter_context(http_replica(replica.netns_path))
        in_netns(client.netns_path, lambda: [request(a) for a in (vip, replica.ip) * 50])  # warm-up: ARP, caches
        for _ in range(ROUNDS):  # interleaved, so that drift on a shared machine hits both alike
            for first in (True, False):  # each path first in every other pass
                if first:
                    vip_latency += latencies(client.netns_path, vip)
                    vip_rates.append(rate(client.netns_path, vip))
                direct_latency += latencies(client.netns_path, replica.ip)
                direct_rates.append(rate(client.netns_path, replica.ip))
                if not first:
                    vip_latency += latencies(client.netns_path, vip)
                    vip_rates.append(rate(client.netns_path, vip))
    vr, dr = statistics.median(vip_rates), statistics.median(direct_rates)
    vl, dl = statistics.median(vip_latency) * 1e6, statistics.median(direct_latency) * 1e6
    rows = [
        (f"HTTP/1.0 requests/s through the service VIP, {CLIENTS} concurrent clients (target >= 0.9x; peer: the "
         "same replica by its address)", f"{vr:,.0f}/s", f"{dr:,.0f}/s", f"{vr / dr:.2f}x"),
        ("HTTP/1.0 request latency p50 (connect, request, answer, close) through the VIP (peer: the replica "
         "directly)", f"{vl:.0f} µs", f"{dl:.0f} µs", f"{dl / vl:.2f}x (peer/ours)"),
    ]  # fmt: skip
    report("service", rows, f"`python -m bench service` ({ROUNDS} rounds of {REQUESTS} sequential requests and "
           f"{SECONDS:g} s of {CLIENTS} concurrent clients per path, interleaved), on a 2-core machine.", (
        "One node's NodeNetwork (its nftables table, a tenant bridge, two container netns): a client container "
        "sends HTTP/1.0 requests, each on a new TCP connection, so that every request's first packet takes the "
        "service's DNAT path (the `lb_services` verdict map, `numgen` dispatch, DNAT; br_netfilter bridges the "
        "DNAT'd frame to the replica and un-NATs its answer), against the same replica asked by its own "
        "address. Client and replica are Python sockets (the replica answers from a few threads); both paths "
        "share them, so the ratio isolates the kernel's balancing; the replica runs in a process of its own, the "
        "client closes each connection (and its netns may reuse TIME_WAIT ports), so that neither path stalls "
        "on port reuse.\n"
    ))
