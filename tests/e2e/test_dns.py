"""Tenant DNS end to end: containers resolve their tenant's names through the resolver on their gateway
(busybox nslookup reads /etc/resolv.conf), names follow create, rename and rm within a second, another
tenant's names are NXDOMAIN, and other names are forwarded to the node's upstream resolvers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path

import httpx
import pytest

from seabox.config import load_config
from tests.e2e.test_api import pull, run
from tests.fixtures.dns import FakeUpstream, NetnsClient, upstream_on_host
from tests.fixtures.server import Server, own_server

Api = Callable[[str], httpx.Client]
SLEEP = ["sleep", "300"]
UPSTREAM = "203.0.113.54"  # the forwarding test's upstream resolver, on a link of the host
UPSTREAM_LINK = f"sbdne{os.getpid() % 100000}"


def execute(client: httpx.Client, cid: str, *cmd: str) -> tuple[int, str]:
    """(exit code, output) of CMD run in the container."""
    r = client.post(f"/v1/containers/{cid}/exec", json={"cmd": list(cmd)})
    assert r.status_code == 200, r.text
    frames = [json.loads(line) for line in r.text.splitlines()]
    return frames[-1]["exit_code"], "".join(f.get("data", "") for f in frames)


def gateway(container: dict) -> str:
    return str(next(IPv4Network(f"{container['status']['ip']}/24", strict=False).hosts()))


def netns_client(server_dir: Path, container: dict) -> NetnsClient:
    """A client asking the container's resolver from inside the container's network namespace."""
    return NetnsClient(load_config(server_dir).run_dir / "netns" / container["id"], gateway(container))


def test_a_container_resolves_its_tenants_names_through_its_gateway_and_no_other_tenants(
    request: pytest.FixtureRequest, api_each_class: Api, busybox_image: str
) -> None:
    runtime = request.node.callspec.params["api_each_class"]
    alice, bob = api_each_class("dnsa"), api_each_class("dnsb")
    pull(alice, busybox_image)
    pull(bob, busybox_image)
    web = run(alice, busybox_image, SLEEP, name="web")
    client = run(alice, busybox_image, SLEEP)
    ip = web["status"]["ip"]
    assert execute(alice, client["id"], "cat", "/etc/resolv.conf") == (0, f"nameserver {gateway(web)}\n")
    for name in ("web", web["id"][:12], f"web.dnsa-{runtime}.seabox.internal"):
        code, out = execute(alice, client["id"], "nslookup", name)
        assert code == 0 and f"Address: {ip}" in out, (name, out)
    other = run(bob, busybox_image, SLEEP)
    for name in ("web", web["id"][:12], f"web.dnsa-{runtime}.seabox.internal"):
        code, out = execute(bob, other["id"], "nslookup", name)
        assert code != 0 and "NXDOMAIN" in out and ip not in out, (name, out)


def test_names_appear_on_create_and_rename_and_go_on_rm_within_a_second(
    server: Server, api: Api, busybox_image: str
) -> None:
    alice = api("dnst")
    pull(alice, busybox_image)
    client = run(alice, busybox_image, SLEEP)
    with netns_client(server.data_dir, client) as resolver:
        r = alice.post("/v1/containers", json={"image": busybox_image, "cmd": SLEEP, "name": "late"})
        assert r.status_code == 201, r.text
        late = r.json()
        assert resolver.until("late", [late["status"]["ip"]]) < 1.0
        assert resolver.addresses("late.dnst.seabox.internal") == [late["status"]["ip"]]
        assert alice.post(f"/v1/containers/{late['id']}/rename", params={"name": "later"}).status_code == 200
        assert resolver.until("later", [late["status"]["ip"]]) < 1.0
        assert resolver.addresses("late") == []
        assert alice.delete(f"/v1/containers/{late['id']}").status_code == 204
        assert resolver.until("later", []) < 1.0
        assert resolver.addresses(late["id"][:12]) == []


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with upstream_on_host(UPSTREAM, UPSTREAM_LINK, {"outside.example": "198.51.100.8"}) as fake:
        yield fake


def test_other_names_are_forwarded_to_the_nodes_upstream_and_internal_ones_never(
    registry: str, busybox_image: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver 127.0.0.53\nnameserver {UPSTREAM}\n")  # the loopback stub is not asked
    with own_server(registry, "dnsfwd", network=f'resolv_conf = "{resolv_conf}"') as srv:
        alice = httpx.Client(base_url=srv.url, headers={"X-Api-Key": srv.tenant("alice")}, timeout=60)
        pull(alice, busybox_image)
        client = run(alice, busybox_image, SLEEP)
        code, out = execute(alice, client["id"], "nslookup", "outside.example")
        assert code == 0 and "Address: 198.51.100.8" in out, out
        code, out = execute(alice, client["id"], "nslookup", "missing.example")
        assert code != 0 and "NXDOMAIN" in out, out
        code, out = execute(alice, client["id"], "nslookup", "nothing.alice.seabox.internal")
        assert code != 0 and "NXDOMAIN" in out, out
        alice.delete(f"/v1/containers/{client['id']}", params={"force": "true"})
        alice.close()
    assert upstream.asked("outside.example") >= 1 and upstream.asked("missing.example") >= 1
    assert upstream.asked("nothing.alice.seabox.internal") == 0
