"""`seabox node`: run a node agent on this host, joined to a Seabox control plane."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

from seabox.cli.command import Group, option
from seabox.defaults import DEFAULT_DATA_DIR
from seabox.errors import SeaboxError


def node(
    join: str = option("--join", required=True, help="The control plane's URL, e.g. http://10.0.0.1:8470."),
    token: str | None = option("--token", help="Join token from `seabox admin node token` (only the first join "
                               "needs one)."),
    name: str | None = option("--name", help="This node's name (default: the host name)."),
    data_dir: Path = option("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                            help="The node's state: images, volumes, containers."),
    advertise: str = option("--advertise", required=True,
                            help="IPV4:PORT servers reach this node's link listener at (it listens there)."),
    log_level: str = option("--log-level", default="info", help="debug, info, warning or error."),
) -> None:
    """Run a node agent: join the cloud, then run the containers the control plane places here.

    Settings (address ranges, registries, isolation, disk caps) come from DATA_DIR/config.toml as
    for `seabox server`. The credential from the first join is kept in DATA_DIR/node.json, so a
    restart needs no token. Containers keep running when the agent stops; the next start adopts them.
    """
    import asyncio

    from seabox.config import load_config
    from seabox.node.standalone import run_node

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(data_dir, node_name=name or socket.gethostname().split(".")[0].lower())
        asyncio.run(run_node(cfg, join, token, advertise))
    except SeaboxError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None


def register(root: Group) -> None:
    root.command("node")(node)
