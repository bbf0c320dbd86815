"""Per-node host names: derived from the node id in the data dir, stable, distinct, within IFNAMSIZ."""

from __future__ import annotations

from pathlib import Path

import pytest

from seabox.errors import InvalidArgument
from seabox.node import identity
from seabox.node.network.names import IFNAMSIZ, NetNames

CID = "0123456789abcdef" * 4


def test_a_new_data_dir_gets_an_id_once_and_keeps_it(tmp_path: Path) -> None:
    first = identity.net_names(tmp_path)
    assert (tmp_path / identity.NODE_ID_FILE).exists()
    assert identity.net_names(tmp_path) == first
    assert first.table.startswith("seabox_") and first.bridge(1).startswith("sb")
    assert first != NetNames.legacy()


def test_two_data_dirs_get_different_names(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = identity.net_names(tmp_path / "a"), identity.net_names(tmp_path / "b")
    assert a.table != b.table
    assert a.bridge(1) != b.bridge(1) and a.veth(CID) != b.veth(CID) and a.vxlan(1) != b.vxlan(1)
    assert not b.is_veth(a.veth(CID)) and b.bridge_index(a.bridge(1)) is None


def test_a_data_dir_with_containers_from_before_keeps_the_shared_names(tmp_path: Path) -> None:
    (tmp_path / "containers" / CID).mkdir(parents=True)
    names = identity.net_names(tmp_path)
    assert (names.bridge(1), names.veth(CID), names.table) == ("sbx-t1", "sbx0123456789", "seabox")
    assert identity.net_names(tmp_path, "custom").table == "custom"
    assert identity.node_id(tmp_path) == identity.LEGACY_ID


def test_an_operator_table_is_honoured(tmp_path: Path) -> None:
    assert identity.net_names(tmp_path, "mytable").table == "mytable"


def test_a_damaged_id_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / identity.NODE_ID_FILE).write_text("not an id\n")
    with pytest.raises(InvalidArgument, match="node id"):
        identity.net_names(tmp_path)


@pytest.mark.parametrize("names", [NetNames.of_node("x" * 32), NetNames.legacy()])
def test_names_fit_and_parse_back(names: NetNames) -> None:
    largest = (1 << 22) - 1  # a /8 supernet of /30s
    for name in (names.bridge(largest), names.vxlan(largest), names.veth(CID)):
        assert len(name.encode()) <= IFNAMSIZ
    assert names.bridge_index(names.bridge(42)) == 42 and names.vxlan_index(names.bridge(42)) is None
    assert names.vxlan_index(names.vxlan(42)) == 42 and names.bridge_index(names.vxlan(42)) is None
    assert names.is_veth(names.veth(CID)) and not names.is_veth(names.bridge(42))
    with pytest.raises(InvalidArgument):
        names.veth("not-hex")
    with pytest.raises(InvalidArgument):
        names.bridge(-1)


def test_new_and_legacy_names_never_match_each_other() -> None:
    legacy = NetNames.legacy()
    for tag in ("x" * 32, "y" * 32, "z" * 32):
        node = NetNames.of_node(tag)
        for name in (legacy.bridge(7), legacy.vxlan(7), legacy.veth(CID)):
            assert node.bridge_index(name) is None and node.vxlan_index(name) is None and not node.is_veth(name)
        for name in (node.bridge(7), node.vxlan(7), node.veth(CID)):
            assert legacy.bridge_index(name) is None and legacy.vxlan_index(name) is None and not legacy.is_veth(name)
