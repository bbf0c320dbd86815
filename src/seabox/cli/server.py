"""`seabox server`: run the embedded control plane and local node agent."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from seabox.defaults import DEFAULT_DATA_DIR, DEFAULT_LISTEN
from seabox.errors import SeaboxError


def register(app: typer.Typer) -> None:
    @app.command("server")
    def server(
        data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="State: database, images, volumes, logs."),
        listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="HOST:PORT for the API."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
        no_node: bool = typer.Option(
            False, "--no-node", help="API and controllers only: containers run on nodes joined with `seabox node`."
        ),
        database_url: str = typer.Option(
            None, "--database-url", help="postgresql://USER@HOST:PORT/DB to share one database between servers "
            "(default: database_url in config.toml, else SQLite under --data-dir).",
        ),
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
            raise typer.BadParameter(exc.message) from None
        try:
            asyncio.run(serve(cfg, with_node=not no_node))
        except SeaboxError as exc:  # e.g. the database cannot be reached
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None
