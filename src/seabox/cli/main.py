"""The `seabox` command: wires the command groups together (one module per resource group)."""

from __future__ import annotations

import typer

from seabox.cli import (admin, billing, containers, crons, fips, functions, images, node, security_groups, server, services,
                        system, volumes)
from seabox.cli.client import SeaboxGroup

app = typer.Typer(
    cls=SeaboxGroup,
    help="Seabox: a container-native cloud. Tenants: run containers; operators: `seabox server`, `seabox admin`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (containers, images, volumes, fips, security_groups, services, crons, functions, billing, system):
    group.register(app)
server.register(app)
node.register(app)
app.add_typer(admin.app, name="admin")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
