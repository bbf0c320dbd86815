"""The `seabox` command: wires the command groups together (one module per resource group)."""

from __future__ import annotations

import sys

import typer
from typer.main import get_command_name

from seabox.cli import (admin, billing, containers, crons, fips, functions, images, node, security_groups, server, services,
                        system, volumes)
from seabox.cli.client import SeaboxGroup

SETTINGS = dict(
    cls=SeaboxGroup,
    help="Seabox: a container-native cloud. Tenants: run containers; operators: `seabox server`, `seabox admin`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app = typer.Typer(**SETTINGS)  # type: ignore[arg-type]
for group in (containers, images, volumes, fips, security_groups, services, crons, functions, billing, system):
    group.register(app)
server.register(app)
node.register(app)
app.add_typer(admin.app, name="admin")


def _group() -> None:
    """(A root callback: a root of one command stays a group, with `seabox NAME` in its usage.)"""


def only(name: str) -> typer.Typer | None:
    """The root with just command or group NAME, or None if there is none: building every command's click
    parameters costs each call a fifth of a second, and a call runs one of them."""
    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return None  # the whole root answers: its error lists the commands
    root = typer.Typer(callback=_group, **SETTINGS)  # type: ignore[arg-type]
    root.registered_commands, root.registered_groups = commands, groups
    return root


def main() -> None:
    root = only(sys.argv[1]) if len(sys.argv) > 1 else None
    (root or app)()


if __name__ == "__main__":
    main()
