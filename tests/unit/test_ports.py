"""Published ports: -p specs and ranges, their limits, Docker's -p/-P translation, and how ps and inspect show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from seabox.api.docker import translate
from seabox.config import NetworkConfig
from seabox.errors import InvalidArgument
from seabox.model.container import Container, ContainerCreate, ContainerStatus
from seabox.model.ports import MAX_PORTS, PortMapping, parse_ports, with_exposed
from seabox.model.tenant import Tenant
from tests.unit.test_store import spec


def m(container: int, fip: int, proto: str = "tcp") -> PortMapping:
    return PortMapping(container_port=container, fip_port=fip, protocol=proto)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "want"), [
    ("80", [m(80, 80)]),
    ("8080:80", [m(80, 8080)]),
    ("53/udp", [m(53, 53, "udp")]),
    ("5353:53/UDP", [m(53, 5353, "udp")]),
    ("8000-8002:9000-9002", [m(9000, 8000), m(9001, 8001), m(9002, 8002)]),
    ("7000-7001/udp", [m(7000, 7000, "udp"), m(7001, 7001, "udp")]),
])
def test_port_specs_parse_to_one_mapping_per_port(text: str, want: list[PortMapping]) -> None:
    assert parse_ports(text) == want


@pytest.mark.parametrize(("text", "says"), [
    ("0", "from 1 to 65535"),
    ("65536:80", "from 1 to 65535"),
    ("80:70000", "from 1 to 65535"),
    ("8000-8010:80", "differ in length"),
    ("9-8", "from low to high"),
    ("80/sctp", "tcp or udp"),
    ("http", "a port or a range"),
    ("127.0.0.1:80:80", "host address"),
    ("", "a port or a range"),
])
def test_bad_port_specs_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_ports(text)


def test_the_create_request_expands_ranges_and_refuses_more_than_32_or_duplicates() -> None:
    req = ContainerCreate(image="x", ports=["8000-8031:8000-8031"])
    assert len(req.ports) == MAX_PORTS
    for ports, says in ((["8000-8032:8000-8032"], "at most 32"), (["80:80", "80:81"], "80/tcp is published twice"),
                        ([{"container_port": 0, "fip_port": 80}], "greater than or equal to 1")):
        with pytest.raises(ValidationError) as err:
            ContainerCreate(image="x", ports=ports)
        assert err.value.errors()[0]["loc"][0] == "ports" and says in str(err.value)
    # the same FIP port over tcp and udp, and one container port on two FIP ports, are different mappings
    assert len(ContainerCreate(image="x", ports=["53:53/tcp", "53:53/udp", "8080:80", "8081:80"]).ports) == 4


def test_publish_all_adds_exposed_ports_not_published_yet() -> None:
    assert with_exposed([m(80, 8080)], ["80/tcp", "443/tcp", "53/udp", "9000"]) == [
        m(80, 8080), m(443, 443), m(53, 53, "udp"), m(9000, 9000)]
    with pytest.raises(ValueError, match="tcp or udp"):
        with_exposed([], ["132/sctp"])


def docker(host_config: dict[str, Any], **body: Any) -> ContainerCreate:
    return translate.create_request({"Image": "busybox", **body, "HostConfig": host_config}, None)


def test_docker_port_bindings_become_floating_ip_ports() -> None:
    req = docker({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}],
                                   "443": [{"HostIp": "0.0.0.0", "HostPort": "8443"}], "9000/tcp": []}},
                 ExposedPorts={"80/tcp": {}})
    assert req.ports == [m(80, 8080), m(53, 53, "udp"), m(443, 8443)] and not req.publish_all
    req = docker({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "PublishAllPorts": True},
                 ExposedPorts={"80/tcp": {}, "22/tcp": {}})
    assert req.ports == [m(80, 8080), m(22, 22)] and req.publish_all


@pytest.mark.parametrize(("host_config", "says"), [
    ({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}, "host address (127.0.0.1)"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "8000-8010"}]}}, "one floating IP port"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "0"}]}}, "one floating IP port"),
    ({"PortBindings": {"80/sctp": [{"HostPort": "80"}]}}, "tcp or udp"),
    ({"PortBindings": {"x/tcp": [{"HostPort": "80"}]}}, "a port or a range"),
])
def test_docker_port_bindings_seabox_cannot_honour_are_400_naming_the_field(host_config: dict[str, Any],
                                                                          says: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        docker(host_config)
    assert err.value.field == "HostConfig.PortBindings" and says in err.value.message


def shown(fip: str | None) -> Container:
    s = spec().model_copy(update={"ports": [m(80, 8080), m(53, 53, "udp"), m(80, 8081)]})
    now = datetime.now(UTC)
    return Container(id="c" * 64, name="web", tenant="t1", created_at=now, spec=s,
                     status=ContainerStatus(state="running", ip="10.208.1.2"), fip=fip)


def test_docker_ps_and_inspect_show_ports_on_the_floating_ip_or_without_one() -> None:
    tenant, net = Tenant(id="t1", name="a", index=1, created_at=datetime.now(UTC)), NetworkConfig()
    with_fip = shown("198.18.0.1")
    assert translate.summary(with_fip, net, tenant)["Ports"] == [
        {"IP": "198.18.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "198.18.0.1", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"},
        {"IP": "198.18.0.1", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"}]
    info = translate.inspect(with_fip, net, tenant)
    assert info["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "198.18.0.1", "HostPort": "8080"}, {"HostIp": "198.18.0.1", "HostPort": "8081"}],
        "53/udp": [{"HostIp": "198.18.0.1", "HostPort": "53"}]}
    assert info["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": "8080"},
                                                            {"HostIp": "", "HostPort": "8081"}]
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    inert = shown(None)
    assert translate.summary(inert, net, tenant)["Ports"] == [{"PrivatePort": 53, "Type": "udp"},
                                                              {"PrivatePort": 80, "Type": "tcp"}]
    assert translate.inspect(inert, net, tenant)["NetworkSettings"]["Ports"] == {"80/tcp": None, "53/udp": None}
