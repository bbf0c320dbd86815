"""The egress policy from config and resolv.conf, and the config keys behind it (pure, no I/O but a temp file)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from pydantic import ValidationError

from seabox.config import NetworkConfig
from seabox.node.network import egress
from seabox.node.network.nft import EgressPolicy, Endpoint

RESOLV = """\
# written by the host
search example.internal
nameserver 10.255.255.53
nameserver 127.0.0.53
nameserver fd00::53
nameserver 169.254.169.253
nameserver 10.255.255.53
options edns0
"""


def resolv_conf(tmp_path: Path, text: str = RESOLV) -> Path:
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    return path


def test_nameservers_are_the_routable_ipv4_ones_in_order(tmp_path: Path) -> None:
    assert egress.nameservers(resolv_conf(tmp_path)) == (IPv4Address("10.255.255.53"), IPv4Address("169.254.169.253"))


def test_no_resolv_conf_means_no_resolvers(tmp_path: Path) -> None:
    assert egress.nameservers(tmp_path / "absent") == ()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("203.0.113.9:8470", Endpoint(IPv4Address("203.0.113.9"), "tcp", 8470)),
        ("127.0.0.1:8470", None),
        ("0.0.0.0:2376", None),
        ("localhost:8470", None),
        ("[::]:2376", None),
    ],
)
def test_listener_endpoints_only_for_routable_ipv4_addresses(listen: str, expected: Endpoint | None) -> None:
    assert egress.listener_endpoint(listen) == expected


def test_default_policy_blocks_private_ranges_and_keeps_the_resolvers_open(tmp_path: Path) -> None:
    policy = egress.policy(NetworkConfig(), ["127.0.0.1:8470"], resolv_conf(tmp_path))
    assert policy == EgressPolicy(
        blocked=tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")),
        allowed=(
            Endpoint(IPv4Address("10.255.255.53"), "udp", 53),
            Endpoint(IPv4Address("10.255.255.53"), "tcp", 53),
            Endpoint(IPv4Address("169.254.169.253"), "udp", 53),
            Endpoint(IPv4Address("169.254.169.253"), "tcp", 53),
        ),
        listeners=(),
    )


def test_policy_opens_the_tenant_api_and_closes_the_listeners(tmp_path: Path) -> None:
    cfg = NetworkConfig(blocked_egress=["198.51.100.0/24"], tenant_api="203.0.113.10:2376")
    policy = egress.policy(cfg, ["203.0.113.9:8470", "0.0.0.0:2376"], resolv_conf(tmp_path, ""))
    assert policy.blocked == (IPv4Network("198.51.100.0/24"),)
    assert policy.allowed == (Endpoint(IPv4Address("203.0.113.10"), "tcp", 2376),)
    assert policy.listeners == (Endpoint(IPv4Address("203.0.113.9"), "tcp", 8470),)


def test_an_empty_blocked_list_is_allowed() -> None:
    assert egress.policy(NetworkConfig(blocked_egress=[]), [], Path("/nonexistent")).blocked == ()


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("blocked_egress", ["10.0.0.1/8"], "not an IPv4 network: 10.0.0.1/8"),
        ("blocked_egress", ["fc00::/7"], "not an IPv4 network"),
        ("tenant_api", "127.0.0.1:8470", "an address containers can route to"),
        ("tenant_api", "0.0.0.0:2376", "an address containers can route to"),
        ("tenant_api", "api.example.com:2376", "with an IPv4 address"),
        ("tenant_api", "203.0.113.10", "with an IPv4 address"),
        ("tenant_api", "203.0.113.10:0", "a port from 1 to 65535"),
        ("tenant_api", "203.0.113.10:65536", "a port from 1 to 65535"),
    ],
)
def test_bad_egress_config_is_refused_naming_the_key(key: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        NetworkConfig.model_validate({key: value})
    assert key in str(err.value) and says in str(err.value)
