"""`seabox server`: run the embedded control plane and local node agent."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from seabox.cli.command import Group, UsageError, flag, option
from seabox.defaults import DEFAULT_DATA_DIR, DEFAULT_LISTEN
from seabox.errors import SeaboxError


def server(
    data_dir: Path = option("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                            help="State: database, images, volumes, logs."),
    listen: str = option("--listen", default=DEFAULT_LISTEN, help="HOST:PORT for the API."),
    log_level: str = option("--log-level", default="info", help="debug, info, warning or error."),
    no_node: bool = flag("--no-node", help="API and controllers only: containers run on nodes joined with "
                         "`seabox node`."),
    database_url: str | None = option("--database-url", help="postgresql://USER@HOST:PORT/DB to share one database "
                                      "between servers (default: database_url in config.toml, else SQLite under "
                                      "--data-dir)."),
) -> None:
    """Run the API, the controllers and a local node agent (SQLite under --data-dir, or PostgreSQL).

    Settings beyond the flags (address ranges, registry mirrors, credentials, plain-HTTP
    registries) are read from DATA_DIR/config.toml. Containers keep running when the server
    stops; the next start re-adopts them.
    """
    import asyncio

    from seabox.config import load_config
    from seabox.server import serve

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(data_dir, listen=listen, database_url=database_url)
    except SeaboxError as exc:
        raise UsageError(exc.message) from None
    try:
        asyncio.run(serve(cfg, with_node=not no_node))
    except SeaboxError as exc:  # e.g. the database cannot be reached
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None


def register(root: Group) -> None:
    root.command("server")(server)
