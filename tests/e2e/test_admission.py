"""Admission control end to end: a size the node cannot hold is a 409 naming the node's capacity."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.docker_fixtures import cleaned, native
from tests.e2e.test_api import pull
from tests.fixtures.server import Server, own_server

GiB = 1 << 30


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))


def gib(n: int) -> str:
    return f"{n / GiB:.1f}".removesuffix(".0") + " GiB"


CPUS = len(os.sched_getaffinity(0))
NODE = rf"node local has {re.escape(gib(host_memory()))} and {CPUS} CPUs? \([\d.]+ [MG]iB free\)"


@pytest.fixture
def tenant(server: Server) -> Iterator[httpx.Client]:
    name = f"adm-{uuid.uuid4().hex[:6]}"
    with cleaned(server, name), native(server, name) as client:
        yield client


@pytest.mark.skipif(CPUS >= 8 and host_memory() >= 16 * GiB, reason="this host can hold size l3")
def test_a_size_bigger_than_the_node_is_refused_at_create_by_cli_native_and_docker_api(
    server: Server, tenant: httpx.Client, busybox_image: str
) -> None:
    message = "size l3 needs 16 GiB of memory and 8 CPUs; " + NODE
    r = server.cli("run", "--size", "l3", busybox_image, "true", tenant="adm-cli")
    assert r.returncode == 1 and re.search(message, r.stderr), r.stderr
    pull(tenant, busybox_image)
    r = tenant.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"], "size": "l3"})
    assert r.status_code == 409 and re.fullmatch(message, r.json()["message"]), r.text
    docker_body = {"Image": busybox_image, "Cmd": ["true"], "HostConfig": {"Memory": 16 * GiB}}
    r = tenant.post("/containers/create", json=docker_body)
    assert r.status_code == 409 and re.fullmatch(message, r.json()["message"]), r.text
    assert tenant.get("/v1/containers", params={"all": "true"}).json() == []


@pytest.mark.skipif(host_memory() > 64 * GiB, reason="filling this host's memory takes too many containers")
def test_a_start_beyond_free_memory_is_refused_until_memory_is_freed(
    server: Server, tenant: httpx.Client, busybox_image: str
) -> None:
    from seabox.model.sizes import SIZES

    size = max((s for s in SIZES.values() if s.cpus <= CPUS), key=lambda s: s.memory_bytes)
    pull(tenant, busybox_image)
    started = []
    for _ in range(host_memory() // size.memory_bytes + 1):
        r = tenant.post("/v1/containers", params={"start": "true"},
                        json={"image": busybox_image, "cmd": ["sleep", "300"], "size": size.name})
        if r.status_code != 201:
            break
        started.append(r.json()["id"])
    assert r.status_code == 409, r.text
    assert len(started) <= host_memory() // size.memory_bytes
    cpus = f"{size.cpus:g} CPU" + ("" if size.cpus == 1 else "s")
    free = re.fullmatch(rf"size {size.name} needs {gib(size.memory_bytes)} of memory and {cpus}; "
                        rf"node local has .* \(([\d.]+) ([MG]iB) free\)", r.json()["message"])
    assert free and float(free[1]) * (GiB if free[2] == "GiB" else 1 << 20) < size.memory_bytes, r.text
    [refused] = [c for c in tenant.get("/v1/containers", params={"all": "true"}).json() if c["id"] not in started]
    assert refused["status"]["state"] == "created"
    assert tenant.post(f"/v1/containers/{refused['id']}/start").status_code == 409
    if started:  # freeing one running container's memory lets the refused one start
        assert tenant.post(f"/v1/containers/{started[0]}/stop", params={"t": "0"}).status_code == 200
        r = tenant.post(f"/v1/containers/{refused['id']}/start")
        assert r.status_code == 200 and r.json()["status"]["state"] == "running", r.text


@pytest.fixture(scope="module")
def small_node(registry: str, busybox_image: str) -> Iterator[Server]:
    """A second server told its node has 1 GiB at overcommit 0.75; used only for calls that start no container."""
    with own_server(registry, "adm", '[admission]\nnode_memory = "1GiB"\nmemory_overcommit = 0.75\n') as srv:
        yield srv


def test_configured_node_memory_and_overcommit_decide_what_fits(small_node: Server, busybox_image: str) -> None:
    with native(small_node, "small") as client:
        pull(client, busybox_image)
        r = client.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"], "size": "m1"})
        assert r.status_code == 409, r.text
        assert r.json()["message"] == (
            f"size m1 needs 1 GiB of memory and 1 CPU; node local has 1 GiB (768 MiB at memory overcommit 0.75) "
            f"and {CPUS} CPU{'' if CPUS == 1 else 's'} (768 MiB free)"
        )
        r = client.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"], "size": "s4"})
        assert r.status_code == 201, r.text
        assert client.delete(f"/v1/containers/{r.json()['id']}").status_code == 204
