"""A real Debian image with Python end to end: tenant networking (TCP, UDP, names), outbound NAT, exit codes."""

from __future__ import annotations

import ast
import ipaddress
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.test_api import logs, pull, run, wait

Api = Callable[[str], httpx.Client]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers, netns and veths"),
]

TENANT_A = "py-alice"
TENANT_B = "py-bob"
TCP_PORT = 7070
UDP_PORT = 7071
PROBE_TIMEOUT = 2.0
# The test's own "outside" network: a /30 of the benchmarking range Seabox keeps for public addresses,
# away from tests/integration/test_network.py's 198.18.255.x.
OUTSIDE_HOST = "198.18.254.1"
OUTSIDE_PEER = "198.18.254.2"
OUTSIDE_PREFIX = 30
OUTSIDE_NET = str(ipaddress.IPv4Interface(f"{OUTSIDE_HOST}/{OUTSIDE_PREFIX}").network)
OUTSIDE_PORT = 8099
_TAG = f"{os.getpid() % 100000}"
OUTSIDE_NETNS = f"seabox-py-out-{_TAG}"
OUTSIDE_LINK = f"sbxpy{_TAG}h"
OUTSIDE_PEER_LINK = f"sbxpy{_TAG}p"

# TCP and UDP echo servers on the container's address; each answers "<proto>:<what it got>".
ECHO_SERVER = f"""
import fcntl, socket, struct, threading
SIOCGIFADDR = 0x8915

def if_address(name):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()))[20:24])

# the container's own address: that of its one non-loopback interface
addr = [if_address(name) for _, name in socket.if_nameindex() if name != "lo"][0]

def tcp():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, {TCP_PORT}))
    srv.listen(16)
    ready.set()
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"tcp:" + conn.recv(256))

def udp(sock):
    while True:
        data, peer = sock.recvfrom(256)
        sock.sendto(b"udp:" + data, peer)

ready = threading.Event()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, {UDP_PORT}))
threading.Thread(target=udp, args=(u,), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
ready.wait()
print("ready", addr, flush=True)
threading.Event().wait()
"""

# Probes each target over TCP and UDP; prints one Python literal (python3-minimal has no json module). A name is resolved only if /etc/hosts has
# it (so an unknown name never becomes a DNS query leaving the host).
ECHO_CLIENT = f"""
import socket, sys, time
timeout = {PROBE_TIMEOUT}
hosts = open("/etc/hosts").read().split()
nss = [l.split() for l in open("/etc/nsswitch.conf") if l.startswith("hosts:")]
report = {{"nsswitch_hosts": nss[0][1:] if nss else None, "targets": {{}}}}
for target in sys.argv[1:]:
    r = report["targets"][target] = {{}}
    try:
        socket.inet_aton(target)
        is_name = False
    except OSError:
        is_name = True
    if is_name and target not in hosts:
        r["resolved"] = None
        continue
    try:
        infos = socket.getaddrinfo(target, {TCP_PORT}, socket.AF_INET, socket.SOCK_STREAM)
        r["resolved"] = sorted({{i[4][0] for i in infos}})
    except OSError as e:
        r["resolved"] = None
        r["resolve_error"] = str(e)
        continue
    addr = r["resolved"][0]
    t0 = time.monotonic()
    try:
        with socket.create_connection((addr, {TCP_PORT}), timeout=timeout) as s:
            s.sendall(b"hello")
            r["tcp"] = s.recv(256).decode()
    except OSError as e:
        r["tcp"] = None
        r["tcp_error"] = repr(e)
    r["tcp_seconds"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout / 4)
        r["udp"] = None
        for _ in range(4):
            try:
                s.sendto(b"ping", (addr, {UDP_PORT}))
                r["udp"] = s.recv(256).decode()
                break
            except OSError as e:
                r["udp_error"] = repr(e)
    r["udp_seconds"] = round(time.monotonic() - t0, 2)
print(repr(report), flush=True)
"""

# Connects to the outside peer and prints what it answers (the source address it saw).
NAT_CLIENT = f"""
import socket
with socket.create_connection(("{OUTSIDE_PEER}", {OUTSIDE_PORT}), timeout={PROBE_TIMEOUT}) as s:
    print(s.recv(64).decode(), flush=True)
"""

# Runs inside the outside netns: answers each connection with the peer address it sees.
OUTSIDE_SERVER = f"""
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{OUTSIDE_PEER}", {OUTSIDE_PORT}))
srv.listen(16)
print("ready", flush=True)
while True:
    conn, peer = srv.accept()
    with conn:
        conn.sendall(peer[0].encode())
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def stdout_of(client: httpx.Client, cid: str) -> str:
    return "".join(e["data"] for e in logs(client, cid) if e["stream"] == "stdout")


def run_python(client: httpx.Client, image: str, script: str, *args: str, **extra: object) -> tuple[int, str]:
    """Run `python3 -c SCRIPT ARGS` to completion; its exit code and stdout."""
    c = run(client, image, ["python3", "-c", script, *args], **extra)
    code = wait(client, c["id"])
    out = stdout_of(client, c["id"])
    if code != 0:
        err = "".join(e["data"] for e in logs(client, c["id"]) if e["stream"] == "stderr")
        raise AssertionError(f"python container exited {code}:\n{out}\n{err}")
    client.delete(f"/v1/containers/{c['id']}")
    return code, out


def wait_for_output(client: httpx.Client, cid: str, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = stdout_of(client, cid)
        if text in out:
            return out
        state = client.get(f"/v1/containers/{cid}").json()["status"]["state"]
        if state != "running" or time.monotonic() > deadline:
            err = "".join(e["data"] for e in logs(client, cid))
            raise AssertionError(f"container {cid[:12]} ({state}) never printed {text!r}:\n{err}")
        time.sleep(0.1)


@pytest.fixture
def python_a(api: Api, python_image: str) -> httpx.Client:
    client = api(TENANT_A)
    pull(client, python_image)
    return client


@pytest.fixture
def python_b(api: Api, python_image: str) -> httpx.Client:
    client = api(TENANT_B)
    pull(client, python_image)
    return client


def test_python_containers_reach_each_other_by_address_and_name_over_tcp_and_udp(
    python_a: httpx.Client, python_b: httpx.Client, python_image: str
) -> None:
    name = unique("pyecho")
    server = run(python_a, python_image, ["python3", "-c", ECHO_SERVER], name=name)
    ip = server["status"]["ip"]
    assert ip.startswith("10."), server["status"]
    ready = wait_for_output(python_a, server["id"], "ready")
    assert ready.split() == ["ready", ip]

    _, out = run_python(python_a, python_image, ECHO_CLIENT, ip, name)
    report = ast.literal_eval(out)
    # glibc resolves through NSS: the hosts line must consult the files (Seabox's /etc/hosts) first.
    assert report["nsswitch_hosts"] and report["nsswitch_hosts"][0] == "files", report
    by_ip, by_name = report["targets"][ip], report["targets"][name]
    assert by_ip["tcp"] == "tcp:hello" and by_ip["udp"] == "udp:ping", by_ip
    assert by_name["resolved"] == [ip], by_name
    assert by_name["tcp"] == "tcp:hello" and by_name["udp"] == "udp:ping", by_name

    # Another tenant: the address is unreachable (TCP times out, UDP unanswered), the name unknown.
    t0 = time.monotonic()
    _, out = run_python(python_b, python_image, ECHO_CLIENT, ip, name)
    report = ast.literal_eval(out)
    other_ip, other_name = report["targets"][ip], report["targets"][name]
    assert other_ip["tcp"] is None and other_ip["udp"] is None, other_ip
    assert other_ip["tcp_seconds"] <= PROBE_TIMEOUT + 0.5 and other_ip["udp_seconds"] <= PROBE_TIMEOUT + 0.5
    assert other_name["resolved"] is None, other_name
    assert time.monotonic() - t0 < 15
    # ...and the server is still fine for its own tenant afterwards.
    _, out = run_python(python_a, python_image, ECHO_CLIENT, name)
    assert ast.literal_eval(out)["targets"][name]["tcp"] == "tcp:hello"


@dataclass(frozen=True)
class Outside:
    """A network namespace standing in for the internet, linked to the host by a veth pair."""

    netns: str
    host_address: str
    peer_address: str
    port: int


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _outside_present() -> list[str]:
    """What of the outside network exists on the host right now (for the post-teardown check)."""
    left = []
    if os.path.exists(f"/run/netns/{OUTSIDE_NETNS}"):
        left.append(f"netns {OUTSIDE_NETNS}")
    if _ip("link", "show", OUTSIDE_LINK, check=False).returncode == 0:
        left.append(f"link {OUTSIDE_LINK}")
    routes = _ip("-4", "route", "show", "root", OUTSIDE_NET).stdout.strip()
    if routes:
        left.append(f"route {routes}")
    return left


@pytest.fixture
def outside() -> Iterator[Outside]:
    """The outside netns with a TCP server on OUTSIDE_PEER that answers with the peer address it sees."""
    assert _outside_present() == [], "a previous run left its outside network behind"
    server: subprocess.Popen[str] | None = None
    try:
        _ip("netns", "add", OUTSIDE_NETNS)
        _ip("link", "add", OUTSIDE_LINK, "type", "veth", "peer", "name", OUTSIDE_PEER_LINK, "netns", OUTSIDE_NETNS)
        _ip("addr", "add", f"{OUTSIDE_HOST}/{OUTSIDE_PREFIX}", "dev", OUTSIDE_LINK)
        _ip("link", "set", OUTSIDE_LINK, "up")
        inside = ["-n", OUTSIDE_NETNS]
        _ip(*inside, "addr", "add", f"{OUTSIDE_PEER}/{OUTSIDE_PREFIX}", "dev", OUTSIDE_PEER_LINK)
        _ip(*inside, "link", "set", OUTSIDE_PEER_LINK, "up")
        _ip(*inside, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{OUTSIDE_NETNS}", "/usr/bin/python3", "-u", "-c", OUTSIDE_SERVER],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.strip() == "ready", f"outside server did not start: {line}{server.stderr.read() if server.stderr else ''}"
        yield Outside(OUTSIDE_NETNS, OUTSIDE_HOST, OUTSIDE_PEER, OUTSIDE_PORT)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        _ip("netns", "del", OUTSIDE_NETNS, check=False)  # takes the peer end, hence the pair, with it
        _ip("link", "del", OUTSIDE_LINK, check=False)
        _ip("-4", "route", "flush", "root", OUTSIDE_NET, check=False)
    assert _outside_present() == []


def test_outbound_connections_are_masqueraded_to_the_host_address(
    python_a: httpx.Client, python_image: str, outside: Outside
) -> None:
    c = run(python_a, python_image, ["python3", "-c", NAT_CLIENT])
    code = wait(python_a, c["id"])
    out = stdout_of(python_a, c["id"])
    assert code == 0, logs(python_a, c["id"])
    seen = out.strip()
    assert seen == outside.host_address, f"outside saw {seen!r}; container is {c['status']['ip']}"
    assert seen != c["status"]["ip"]


def test_python_exit_code_stdout_and_stderr(python_a: httpx.Client, python_image: str) -> None:
    script = "import sys; print('x'); print('oops', file=sys.stderr); sys.exit(4)"
    c = run(python_a, python_image, ["python3", "-c", script])
    assert wait(python_a, c["id"]) == 4
    entries = logs(python_a, c["id"])
    assert [e["data"] for e in entries if e["stream"] == "stdout"] == ["x\n"]
    assert [e["data"] for e in entries if e["stream"] == "stderr"] == ["oops\n"]
    got = python_a.get(f"/v1/containers/{c['id']}").json()
    assert got["status"]["state"] == "exited" and got["status"]["exit_code"] == 4
