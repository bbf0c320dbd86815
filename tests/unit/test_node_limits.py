"""Node limits without root: registry host checks, the tenant-facing registry errors, the layer scan, disk config."""

from __future__ import annotations

import io
import ipaddress
import random
import tarfile
from pathlib import Path

import pytest

from seabox.config import ServerConfig
from seabox.errors import InvalidArgument, UpstreamError
from seabox.node.images import layer_scan
from seabox.model.reference import parse_reference
from seabox.node.images.registry import Source
from seabox.node.images.registry_hosts import admit, allowed_destinations, host_name
from seabox.node.network.pull_egress import Destination, is_internal
from seabox.node.images.tools import ToolResult


@pytest.mark.parametrize(
    ("host", "name"),
    [("registry.lan:5000", "registry.lan"), ("[::1]:5000", "::1"), ("[fe80::1]", "fe80::1"),
     ("docker.io", "docker.io"), ("10.0.0.1", "10.0.0.1")],
)
def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name


@pytest.mark.parametrize(
    ("address", "internal"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
     ("100.64.0.1", True), ("169.254.169.254", True), ("0.0.0.0", True), ("224.0.0.1", True),
     ("::1", True), ("fd00::1", True), ("fe80::1", True), ("::ffff:127.0.0.1", True),
     ("8.8.8.8", False), ("2001:4860::8888", False)],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal


def test_every_address_python_calls_non_global_is_internal() -> None:
    # the pull egress table refuses these ranges: it must cover all that admission refuses
    rng = random.Random(7)
    for _ in range(20000):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        assert is_internal(v4) or (v4.is_global and not v4.is_multicast), v4
        v6 = ipaddress.IPv6Address(rng.getrandbits(16) << 112 | rng.getrandbits(112) if rng.random() < 0.5
                                   else (0x2001 << 112) | rng.getrandbits(112))
        assert is_internal(v6) or (v6.is_global and not v6.is_multicast), v6


async def test_allowed_hosts_become_the_internal_destinations_pulls_may_reach() -> None:
    allowed = {"127.0.0.1:5000", "10.1.2.3", "[::1]:5001", "localhost", "8.8.8.8:443"}
    found = set(await allowed_destinations(allowed))
    assert {Destination("127.0.0.1", 5000), Destination("10.1.2.3"), Destination("::1", 5001),
            Destination("127.0.0.1")} <= found  # localhost: every port of what it resolves to
    assert not any(d.address == "8.8.8.8" for d in found)  # a public address needs no entry


async def test_literal_hosts_need_no_lookup_and_no_pin(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="registry 169.254.169.254 is not allowed") as refused:
        await admit("169.254.169.254", set(), tmp_path / "hosts")
    assert refused.value.status == 400
    exact = await admit("127.0.0.1:5000", {"127.0.0.1:5000"}, tmp_path / "hosts")
    assert exact.hosts_file is None and exact.command(["x"], tmp_path)[-4:] == [str(tmp_path), "-", "--", "x"]
    assert (await admit("127.0.0.1:5001", {"127.0.0.1"}, tmp_path / "hosts")).hosts_file is None
    with pytest.raises(InvalidArgument):
        await admit("127.0.0.1:5001", {"127.0.0.1:5000"}, tmp_path / "hosts")
    assert not (tmp_path / "hosts").exists()


@pytest.mark.parametrize(
    "stderr",
    [
        'level=fatal msg="pinging container registry r:1: Get \\"https://r:1/v2/\\": dial tcp 127.0.0.1:1: '
        'connect: connection refused"',
        'level=fatal msg="Get \\"https://r:1/v2/\\": dial tcp 192.0.2.1:1: i/o timeout"',
        'level=fatal msg="dial tcp 192.0.2.1:1: connect: no route to host"',
        'level=fatal msg="lookup r on 127.0.0.53:53: no such host"',
    ],
)
def test_connection_failures_read_alike(stderr: str) -> None:
    source = Source(host="r:1", repository="library/x", insecure=False, auth=None)
    error = source.error(parse_reference("r:1/x"), ToolResult([], 1, b"", stderr))
    assert isinstance(error, UpstreamError) and error.message == "cannot reach registry r:1"


def _tar(path: Path, sizes: list[int]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"f{i}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_layer_scan_counts_blocks_and_stops_past_the_limit(tmp_path: Path) -> None:
    one = _tar(tmp_path / "one.tar.gz", [0, 1, 4096, 4097])
    assert layer_scan.unpacked_total([one], 1 << 20) == (4096 * 5, False)
    two = _tar(tmp_path / "two.tar.gz", [100_000])
    assert layer_scan.unpacked_total([one, two], 1 << 20) == (4096 * 5 + 102_400, False)
    assert layer_scan.unpacked_total([one, two], 50_000) == (4096 * 5 + 102_400, True)


def test_layer_scan_refuses_zstd(tmp_path: Path) -> None:
    blob = tmp_path / "zstd"
    blob.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(100))
    with pytest.raises(layer_scan.UnsupportedLayer, match="zstd"):
        layer_scan.unpacked_total([blob], 1 << 20)


def test_disk_config_takes_sizes_as_text() -> None:
    cfg = ServerConfig.model_validate({"disk": {"image_max_unpacked": "512MiB", "container_log_max": 65536}})
    assert cfg.disk.image_max_unpacked == 512 << 20 and cfg.disk.container_log_max == 65536
    assert ServerConfig().disk.image_max_unpacked == 8 << 30 and ServerConfig().disk.container_log_max == 10 << 20
