"""The `seabox` command: wires the command groups together (one module per resource group), importing only the one a call names."""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP = ("Seabox: a container-native cloud. Tenants: run containers; operators: `seabox server`, `seabox admin`. "
        "`seabox --version` prints the client's version.")
# which module registers each top-level command or group (a unit test checks this against what they register):
# a call imports only its own module, so `seabox ps` loads neither the operator commands nor the server's code
MODULES = {
    "containers": ("run", "create", "ps", "inspect", "logs", "exec", "start", "stop", "restart", "kill", "rm", "wait",
                   "rename", "top", "stats"),
    "images": ("pull", "images", "rmi", "tag", "image"),
    "volumes": ("volume",),
    "fips": ("fip",),
    "security_groups": ("sg", "update"),
    "services": ("service",),
    "crons": ("cron",),
    "functions": ("func",),
    "billing": ("usage", "invoice", "prices"),
    "system": ("login", "info", "quota", "version", "sizes", "events", "docker-env"),
    "server": ("server",),
    "node": ("node",),
    "admin": ("admin",),
}
OWNER = {name: module for module, names in MODULES.items() for name in names}


def _group() -> None:
    """(A root callback: a root of one command stays a group, with `seabox NAME` in its usage.)"""


def _module(name: str) -> ModuleType:
    return import_module(f"seabox.cli.{name}")


def root(modules: list[str], one: bool = False) -> typer.Typer:
    """The `seabox` group with the commands of MODULES (ONE: a group of one command, still `seabox NAME`)."""
    import typer

    from seabox.cli.client import SeaboxGroup

    app = typer.Typer(cls=SeaboxGroup, help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, callback=_group if one else None)
    for name in modules:
        module = _module(name)
        if name == "admin":
            app.add_typer(module.app, name="admin")
        else:
            module.register(app)
    return app


def only(name: str) -> typer.Typer | None:
    """The root with just command or group NAME (only its module imported), or None if no module has it."""
    module = OWNER.get(name)
    if module is None:
        return None  # the whole root answers: its error lists the commands
    app = root([module], one=True)
    app.registered_commands = [c for c in app.registered_commands if _name(c) == name]
    app.registered_groups = [g for g in app.registered_groups if g.name == name]
    return app


def _name(command: typer.models.CommandInfo) -> str:
    from typer.main import get_command_name

    return command.name or get_command_name(command.callback.__name__ if command.callback else "")


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from seabox import __version__

        print(f"seabox version {__version__}")
        return
    app = only(args[0]) if args else None
    (app or root(list(MODULES)))()


if __name__ == "__main__":
    main()
