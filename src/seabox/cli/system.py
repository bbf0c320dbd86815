"""Account and server commands: login, info, version, sizes and the event log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from seabox import __version__
from seabox.cli.client import (
    Client,
    CliError,
    connect,
    human_bytes,
    normalise_url,
    parse_time,
    print_table,
    save_credentials,
    short_id,
    timestamp,
)

PANEL = "Account and server"


def login(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="The server, e.g. https://seabox.example.com or 127.0.0.1:8470.")
    ],
    key: Annotated[str, typer.Argument(metavar="KEY", help="Your API key (from `seabox admin tenant create`).")],
) -> None:
    """Check an API key against a server and save both for later commands (file mode 0600)."""
    url = normalise_url(url)
    info = Client(url, key).get("/v1/info")
    path = save_credentials(url, key)
    print(f"Logged in to {url} as tenant {info['tenant']} (saved in {path})")


def info() -> None:
    """Show the server and what you have on it."""
    api = connect()
    data = api.get("/v1/info")
    print(f"Server: {api.url}")
    print(f"Server version: {data['version']}")
    print(f"Tenant: {data['tenant']}")
    print(f"Node: {data['node']}")
    print(f"Containers: {data['containers']} (running {data['running']})")
    print(f"Images: {data['images']}")


def version() -> None:
    """Show the client version and, if one is configured, the server's."""
    print(f"Client: {__version__}")
    try:
        api = connect()
    except CliError:
        return
    print(f"Server: {api.get('/v1/info')['version']} ({api.url})")


def sizes() -> None:
    """List the container sizes (memory limit, CPU weight and cores) for `run --size`."""
    rows = [
        [
            s["name"] + (" (default)" if s.get("default") else ""),
            human_bytes(s["memory_bytes"], binary=True),
            str(s["cpu_shares"]),
            f"{s['cpus']:g}",
        ]
        for s in connect().get("/v1/sizes")
    ]
    print_table(["SIZE", "MEMORY", "CPU SHARES", "CPUS"], rows)


def event_line(event: dict[str, Any]) -> str:
    """One event as `TIME TYPE ACTION NAME (id=..., attributes)`."""
    ident, name = event["resource_id"], event.get("resource_name") or ""
    attrs = {"id": short_id(ident)} if name and name != ident else {}
    attrs.update(sorted((event.get("attributes") or {}).items()))
    details = ", ".join(f"{k}={v}" for k, v in attrs.items())
    return f"{timestamp(event['time'])} {event['type']} {event['action']} {name or ident}" + (
        f" ({details})" if details else ""
    )


def events(
    since: Annotated[
        float | None,
        typer.Option("--since", parser=parse_time, help="Events since: 10m, 1h, unix seconds or an ISO time."),
    ] = None,
    until: Annotated[
        float | None, typer.Option("--until", parser=parse_time, help="Events until: same forms as --since.")
    ] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new events as they happen.")] = False,
) -> None:
    """Show lifecycle events of your containers, images and volumes."""
    for event in connect().stream("GET", "/v1/events", params={"since": since, "until": until, "follow": follow}):
        print(event_line(event), flush=True)


def register(app: typer.Typer) -> None:
    for command, name in ((login, "login"), (info, "info"), (version, "version"), (sizes, "sizes"), (events, "events")):
        app.command(name, rich_help_panel=PANEL)(command)
