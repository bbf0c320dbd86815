"""`seabox admin node`: the operator's view of nodes (list, what runs where) and cordoning."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from seabox.cli.admin import DATA_DIR_OPT, _fail, _store, console
from seabox.cli.client import human_bytes
from seabox.cli.command import Group, argument, option
from seabox.errors import SeaboxError
from seabox.model.sizes import SIZES

node_app = Group("node", "Nodes: join tokens, list them, see what runs where, cordon, drain and uncordon.")
NODE = argument("NAME", "The node's name.")


def _open(data_dir: Path):  # type: ignore[no-untyped-def]
    # imported here: the config's models, SQLAlchemy and Alembic would slow every tenant command's start
    from seabox.config import load_config
    from seabox.store.nodes import NodeStore

    store = _store(data_dir)
    return load_config(data_dir), store, NodeStore(store.engine)


@node_app.command("ls")
def node_ls(data_dir: Path = DATA_DIR_OPT) -> None:
    """List nodes: address, state (ready, down, cordoned, draining), memory allocated/total, containers."""
    from seabox.model.container import ACTIVE

    cfg, store, nodes = _open(data_dir)
    now = time.time()
    table = Table("NAME", "ADDRESS", "STATE", "MEMORY", "CPUS", "CONTAINERS", "LAST HEARTBEAT", box=None)
    for node in nodes.list():
        placed = store.list_containers(node=node.name)
        allocated = sum(SIZES[c.spec.size].memory_bytes for c in placed if c.status.state in ACTIVE)
        table.add_row(
            node.name, node.address, node.state(now, cfg.nodes.down_after),
            f"{human_bytes(allocated, binary=True)} / {human_bytes(node.memory_bytes, binary=True)}", str(node.cpus), str(len(placed)),
            f"{now - node.heartbeat_at.timestamp():.0f}s ago",
        )  # fmt: skip
    console.print(table)


@node_app.command("ps")
def node_ps(name: str = NODE, data_dir: Path = DATA_DIR_OPT) -> None:
    """The containers placed on node NAME: id, tenant, name, state."""
    _, store, nodes = _open(data_dir)
    try:
        nodes.get(name)
    except SeaboxError as exc:
        raise _fail(exc) from None
    tenants = {t.id: t.name for t in store.list_tenants()}
    table = Table("CONTAINER ID", "TENANT", "NAME", "STATE", "SIZE", box=None)
    for c in store.list_containers(node=name):
        table.add_row(c.id[:12], tenants.get(c.tenant, c.tenant), c.name, c.status.state, c.spec.size)
    console.print(table)


def _set_schedule(name: str, schedule: str, data_dir: Path) -> None:
    _, _, nodes = _open(data_dir)
    try:
        nodes.set_schedule(name, schedule)  # type: ignore[arg-type]
    except SeaboxError as exc:
        raise _fail(exc) from None
    print(f"node {name}: {schedule}")


@node_app.command("cordon")
def node_cordon(name: str = NODE, data_dir: Path = DATA_DIR_OPT) -> None:
    """Stop placing new containers on node NAME (what runs there keeps running)."""
    _set_schedule(name, "cordoned", data_dir)


@node_app.command("uncordon")
def node_uncordon(name: str = NODE, data_dir: Path = DATA_DIR_OPT) -> None:
    """Let node NAME take new containers again (also ends a drain)."""
    _set_schedule(name, "ready", data_dir)


@node_app.command("drain")
def node_drain(name: str = NODE, data_dir: Path = DATA_DIR_OPT) -> None:
    """Empty node NAME: containers whose restart policy keeps them running and that no volume pins move to
    other nodes; the others are stopped. No new containers go there until `uncordon`."""
    _set_schedule(name, "draining", data_dir)


@node_app.command("token")
def node_token(
    ttl: str = option("--ttl", default="1h", help="How long the token may be used: seconds, or like 30m, 12h, 7d."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Print a join token: `seabox node --join URL --token TOKEN` on a host makes it a node (one node per token)."""
    from seabox.config import parse_duration

    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        raise _fail(SeaboxError(f"--ttl: {exc}", field="ttl")) from None
    _, _, nodes = _open(data_dir)
    print(nodes.issue_join_token(seconds))
