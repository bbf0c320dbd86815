"""Raw sockets and spoofed sources toward another tenant: nothing arrives, whatever source the packet claims."""

from __future__ import annotations

import ast
import os
import time

import pytest

from tests.e2e.test_api import logs, pull, run, wait
from tests.isolation.conftest import RUNTIME_CLASSES

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers and tenant networks"),
]

PORT = 7123
# Prints every datagram it gets on its own address, one per line.
LISTENER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {PORT}))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512)
    print(repr((data.decode(), peer[0])), flush=True)
"""
# argv: target, then the sources to claim; sends a hand-made IPv4/UDP packet per source through a raw
# socket, then one ordinary datagram. Prints what each send did.
SENDER = f"""
import socket, struct, sys
target, sources = sys.argv[1], sys.argv[2:]

def checksum(data):
    data += b"\\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

def packet(src, dst, payload):
    udp = struct.pack("!HHHH", 40000, {PORT}, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + udp

report = {{}}
for src in sources:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
            for _ in range(3):
                raw.sendto(packet(src, target, ("spoofed " + src).encode()), (target, 0))
        report[src] = "sent"
    except OSError as exc:
        report[src] = "refused: " + exc.strerror
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
    for _ in range(3):
        plain.sendto(b"plain", (target, {PORT}))
print(repr(report), flush=True)
"""


def _received(client: object, cid: str) -> list[tuple[str, str]]:
    lines = [e["data"] for e in logs(client, cid) if e["stream"] == "stdout"]  # type: ignore[arg-type]
    return [ast.literal_eval(line) for line in "".join(lines).splitlines() if line.startswith("(")]


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_spoofed_and_plain_packets_never_reach_another_tenant(api: object, python_image: str, runtime: str) -> None:
    attacker, victim = api("spoof-attacker"), api("spoof-victim")  # type: ignore[operator]
    pull(attacker, python_image)
    pull(victim, python_image)
    listener = run(victim, python_image, ["python3", "-c", LISTENER], runtime_class=runtime)
    deadline = time.monotonic() + 30
    while "ready" not in "".join(e["data"] for e in logs(victim, listener["id"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    target = victim.get(f"/v1/containers/{listener['id']}").json()["status"]["ip"]
    neighbour = target.rsplit(".", 1)[0] + ".77"  # an address of the victim's own subnet
    gateway = target.rsplit(".", 1)[0] + ".1"
    # control: the victim's own tenant reaches the listener, so silence below means blocked
    friend = run(victim, python_image, ["python3", "-c", SENDER, target, neighbour], runtime_class=runtime)
    assert wait(victim, friend["id"]) == 0
    deadline = time.monotonic() + 10
    while not any(data == "plain" for data, _ in _received(victim, listener["id"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(data == "plain" for data, _ in _received(victim, listener["id"])), "the listener hears nothing"
    before = len(_received(victim, listener["id"]))
    c = run(attacker, python_image, ["python3", "-c", SENDER, target, neighbour, gateway, "203.0.113.9"],
            runtime_class=runtime)  # fmt: skip
    assert wait(attacker, c["id"]) == 0
    time.sleep(1.5)
    assert _received(victim, listener["id"])[before:] == [], "another tenant's packets arrived"
