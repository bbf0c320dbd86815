"""This node's identity on its host: an id kept in DATA_DIR/node-id, and the host-global names derived from it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from seabox.errors import InvalidArgument
from seabox.node.network.names import NetNames

NODE_ID_FILE = "node-id"
# The id of a data dir that already ran containers under the names every node used to share.
LEGACY_ID = "legacy"
_ID_HEX = 32


def node_id(data_dir: Path) -> str:
    """The node id in data_dir, made on first use: random, or LEGACY_ID for a data dir that has
    containers from before per-node names (they keep their links and table)."""
    path = data_dir / NODE_ID_FILE
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = LEGACY_ID if _has_containers(data_dir) else secrets.token_hex(_ID_HEX // 2)
        scratch = path.with_name(f".{NODE_ID_FILE}.{os.getpid()}")
        scratch.write_text(value + "\n")
        try:
            os.link(scratch, path)  # whole or not at all, and a process that raced us keeps its id
        except FileExistsError:
            return node_id(data_dir)
        finally:
            scratch.unlink()
        return value
    if value != LEGACY_ID and not (len(value) == _ID_HEX and all(c in "0123456789abcdef" for c in value)):
        raise InvalidArgument(f"{path} holds no node id ({_ID_HEX} hex digits): {value[:40]!r}")
    return value


def net_names(data_dir: Path, table: str | None = None) -> NetNames:
    """The network names of the node whose data dir this is; table is the operator's nft_table, if set."""
    value = node_id(data_dir)
    return NetNames.legacy(table) if value == LEGACY_ID else NetNames.of_node(value, table)


def _has_containers(data_dir: Path) -> bool:
    try:
        return any((data_dir / "containers").iterdir())
    except FileNotFoundError:
        return False
