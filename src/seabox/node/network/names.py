"""The host-global names of one node's network: its nftables table and its bridges, VXLAN devices and veths."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from seabox.errors import InvalidArgument

IFNAMSIZ = 15  # bytes of an interface name, without the terminating NUL
CONTAINER_ID_RE = re.compile(r"[0-9a-f]{10,64}")
TABLE_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# A node's link names start with "sb" and four base32 characters derived from its id: 2^20 stems.
NODE_STEM_PREFIX = "sb"
NODE_TAG_CHARS = 4
NODE_TABLE_CHARS = 12
_STEM_RE = re.compile(r"[a-z][a-z0-9-]{0,5}")
# Before per-node names every node used these: sbx-t<N> bridges, sbx<10 hex> veths, table "seabox".
LEGACY_STEM = "sbx-"
LEGACY_VETH_STEM = "sbx"
LEGACY_VETH_ID_CHARS = 10
LEGACY_TABLE = "seabox"


def check_table_name(table: str) -> None:
    """Raise InvalidArgument unless table is a plain nft identifier."""
    if not TABLE_NAME_RE.fullmatch(table):
        raise InvalidArgument(f"invalid nftables table name: {table!r}", field="table")


def check_container_id(container_id: str) -> None:
    """Raise InvalidArgument unless container_id is 10 to 64 lowercase hex digits."""
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise InvalidArgument(
            f"container id must be 10-64 lowercase hex digits: {container_id!r}", field="container_id"
        )


@dataclass(frozen=True)
class NetNames:
    """How one node names what it creates in its network namespace, so that nodes sharing one never clash.

    Tenant bridges are <stem>t<index>, VXLAN devices <stem>v<index>, SNAT ports <stem>s<index> (their
    bridge end <stem>p<index>), the host end of a container's
    veth <veth_stem> followed by the first veth_id_chars hex digits of the container id. Every link
    carries "seabox:<table>" (veths: "seabox:<table>:<container id>") in its ifalias.
    """

    table: str
    stem: str
    veth_stem: str
    veth_id_chars: int

    def __post_init__(self) -> None:
        check_table_name(self.table)
        for stem in (self.stem, self.veth_stem):
            if not _STEM_RE.fullmatch(stem):
                raise InvalidArgument(f"invalid link name stem: {stem!r}", field="stem")
        if not 10 <= len(self.veth_stem) + self.veth_id_chars <= IFNAMSIZ or self.veth_id_chars < 9:
            raise InvalidArgument(f"veth names {self.veth_stem!r} + {self.veth_id_chars} hex do not fit", field="stem")

    @classmethod
    def of_node(cls, node_id: str, table: str | None = None) -> NetNames:
        """The names of the node with this id; its table is table when the operator set one."""
        digest = base64.b32encode(hashlib.sha256(node_id.encode()).digest()).decode().lower()
        stem = NODE_STEM_PREFIX + digest[:NODE_TAG_CHARS]
        return cls(table or f"seabox_{digest[:NODE_TABLE_CHARS]}", stem, stem, IFNAMSIZ - len(stem))

    @classmethod
    def legacy(cls, table: str | None = None) -> NetNames:
        """The names every node used before they were per node (kept for installs that still run them)."""
        return cls(table or LEGACY_TABLE, LEGACY_STEM, LEGACY_VETH_STEM, LEGACY_VETH_ID_CHARS)

    def bridge(self, tenant_index: int) -> str:
        """The tenant's bridge."""
        return self._tenant_link("t", tenant_index)

    def vxlan(self, tenant_index: int) -> str:
        """The tenant's VXLAN device (attached to its bridge)."""
        return self._tenant_link("v", tenant_index)

    def snat(self, tenant_index: int) -> str:
        """The host end of the tenant's SNAT port (node/network/snat_port.py)."""
        return self._tenant_link("s", tenant_index)

    def snat_peer(self, tenant_index: int) -> str:
        """The bridge end of the tenant's SNAT port."""
        return self._tenant_link("p", tenant_index)

    def veth(self, container_id: str) -> str:
        """The host end of the container's veth."""
        check_container_id(container_id)
        return f"{self.veth_stem}{container_id[: self.veth_id_chars]}"

    def bridge_index(self, ifname: str) -> int | None:
        """The tenant index if ifname is one of this node's bridge names, else None."""
        return self._parse(ifname, "t")

    def vxlan_index(self, ifname: str) -> int | None:
        """The tenant index if ifname is one of this node's VXLAN device names, else None."""
        return self._parse(ifname, "v")

    def snat_index(self, ifname: str) -> int | None:
        """The tenant index if ifname is one of this node's SNAT port names (its host end), else None."""
        return self._parse(ifname, "s")

    def is_veth(self, ifname: str) -> bool:
        return re.fullmatch(f"{re.escape(self.veth_stem)}[0-9a-f]{{{self.veth_id_chars}}}", ifname) is not None

    @property
    def link_tag(self) -> str:
        """The ifalias of this node's bridges and VXLAN devices."""
        return f"seabox:{self.table}"

    def veth_tag(self, container_id: str) -> str:
        return f"{self.link_tag}:{container_id}"

    def _tenant_link(self, kind: str, tenant_index: int) -> str:
        name = f"{self.stem}{kind}{tenant_index}"
        if tenant_index < 0 or len(name) > IFNAMSIZ:
            raise InvalidArgument(f"tenant index {tenant_index} does not make a link name", field="tenant_index")
        return name

    def _parse(self, ifname: str, kind: str) -> int | None:
        match = re.fullmatch(f"{re.escape(self.stem)}{kind}(0|[1-9][0-9]*)", ifname)
        return int(match.group(1)) if match else None
