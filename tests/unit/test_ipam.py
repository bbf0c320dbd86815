"""Tenant subnet carving, gateways, address allocation and MACs (pure, no I/O)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from seabox.config import NetworkConfig
from seabox.errors import Conflict, InvalidArgument
from seabox.model import ipam


def test_tenant_subnets_are_carved_in_order() -> None:
    cfg = NetworkConfig()
    assert ipam.tenant_subnet(cfg, 0) == IPv4Network("10.208.0.0/24")
    assert ipam.tenant_subnet(cfg, 1) == IPv4Network("10.208.1.0/24")
    assert ipam.tenant_subnet(cfg, 900) == IPv4Network("10.211.132.0/24")
    assert ipam.tenant_subnet(cfg, 4095) == IPv4Network("10.223.255.0/24")


@pytest.mark.parametrize("index", [-1, 4096, 10**9])
def test_tenant_index_out_of_range(index: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        ipam.tenant_subnet(NetworkConfig(), index)
    assert info.value.field == "tenant_index"


def test_other_prefix_lengths() -> None:
    cfg = NetworkConfig(tenant_supernet="172.30.0.0/16", tenant_prefixlen=26)
    assert ipam.tenant_subnet(cfg, 0) == IPv4Network("172.30.0.0/26")
    assert ipam.tenant_subnet(cfg, 5) == IPv4Network("172.30.1.64/26")
    with pytest.raises(InvalidArgument):
        ipam.tenant_subnet(cfg, 1024)


@pytest.mark.parametrize("prefixlen", [8, 31, 32])
def test_impossible_prefix_lengths(prefixlen: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        ipam.tenant_subnet(NetworkConfig(tenant_prefixlen=prefixlen), 0)
    assert info.value.field == "tenant_prefixlen"


def test_gateway_is_first_host() -> None:
    assert ipam.gateway(IPv4Network("10.208.7.0/24")) == IPv4Address("10.208.7.1")
    assert ipam.gateway(IPv4Network("10.0.0.4/30")) == IPv4Address("10.0.0.5")
    with pytest.raises(InvalidArgument):
        ipam.gateway(IPv4Network("10.0.0.4/31"))


def test_allocate_lowest_free_after_gateway() -> None:
    subnet = IPv4Network("10.208.3.0/24")
    assert ipam.allocate(subnet, set()) == IPv4Address("10.208.3.2")
    assert ipam.allocate(subnet, {IPv4Address("10.208.3.2"), IPv4Address("10.208.3.3")}) == IPv4Address("10.208.3.4")
    # A hole left by a removed container is reused first.
    assert ipam.allocate(subnet, {IPv4Address("10.208.3.3")}) == IPv4Address("10.208.3.2")
    # Addresses outside the subnet, or the gateway itself, do not matter.
    assert ipam.allocate(subnet, {IPv4Address("10.208.3.1"), IPv4Address("10.9.9.9")}) == IPv4Address("10.208.3.2")


def test_allocate_never_hands_out_broadcast() -> None:
    subnet = IPv4Network("10.208.3.0/24")
    used = {IPv4Address(f"10.208.3.{n}") for n in range(2, 254)}
    assert ipam.allocate(subnet, used) == IPv4Address("10.208.3.254")
    used.add(IPv4Address("10.208.3.254"))
    with pytest.raises(Conflict, match="tenant network full"):
        ipam.allocate(subnet, used)


def test_smallest_subnet_holds_one_container() -> None:
    subnet = IPv4Network("10.0.0.4/30")
    assert ipam.allocate(subnet, set()) == IPv4Address("10.0.0.6")
    with pytest.raises(Conflict, match="tenant network full"):
        ipam.allocate(subnet, {IPv4Address("10.0.0.6")})


@pytest.mark.parametrize("ip", ["10.208.3.0", "10.208.3.1", "10.208.3.255", "10.208.4.2"])
def test_check_host_rejects_reserved_and_foreign(ip: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ipam.check_host(IPv4Network("10.208.3.0/24"), IPv4Address(ip))
    assert info.value.field == "ip"


def test_check_host_accepts_container_address() -> None:
    ipam.check_host(IPv4Network("10.208.3.0/24"), IPv4Address("10.208.3.254"))


def test_mac_is_local_unicast_and_follows_ip() -> None:
    mac = ipam.mac_address(IPv4Address("10.211.132.2"))
    assert mac == "02:53:0a:d3:84:02"
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01
