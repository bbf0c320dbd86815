"""Account and server commands: login, info, quota, version, sizes, the event log and docker-env."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from seabox import __version__
from seabox.cli.client import (
    Client,
    CliError,
    connect,
    human_bytes,
    load_credentials,
    normalise_url,
    parse_time,
    print_table,
    save_credentials,
    short_id,
    timestamp,
)
from seabox.cli.command import Group, argument, flag, option

PANEL = "Account and server"


def login(
    url: str = argument("URL", "The server, e.g. https://seabox.example.com or 127.0.0.1:8470."),
    key: str = argument("KEY", "Your API key (from `seabox admin tenant create`)."),
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
    print(f"Containers: {data['containers']} (running {data['running']})")
    print(f"Images: {data['images']}")


def quota() -> None:
    """Show your quotas: how much of each you use and its limit (past one a request is refused, nothing made)."""
    rows = [[q["key"], str(q["used"]), str(q["limit"]) + ("" if q["default"] else " (set for you)"), q["counts"]]
            for q in connect().get("/v1/quota")]
    print_table(["QUOTA", "USED", "LIMIT", "COUNTS"], rows)


def version() -> None:
    """Show the client version and, if one is configured, the server's."""
    print(f"Client: {__version__}")
    try:
        api = connect()
    except CliError:
        return
    print(f"Server: {api.get('/v1/info')['version']} ({api.url})")


def sizes() -> None:
    """List the container sizes (memory limit, CPU weight, cores and disk) for `run --size`."""
    rows = [
        [
            s["name"] + (" (default)" if s.get("default") else ""),
            human_bytes(s["memory_bytes"], binary=True),
            str(s["cpu_shares"]),
            f"{s['cpus']:g}",
            human_bytes(s["disk_bytes"], binary=True),
        ]
        for s in connect().get("/v1/sizes")
    ]
    print_table(["SIZE", "MEMORY", "CPU SHARES", "CPUS", "DISK"], rows)


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
    since: float | None = option("--since", type=parse_time, help="Events since: 10m, 1h, unix seconds or an ISO time."),
    until: float | None = option("--until", type=parse_time, help="Events until: same forms as --since."),
    follow: bool = flag("-f", "--follow", help="Keep printing new events as they happen."),
) -> None:
    """Show lifecycle events of your containers, images and volumes."""
    for event in connect().stream("GET", "/v1/events", params={"since": since, "until": until, "follow": follow}):
        print(event_line(event), flush=True)


def docker_env(
    config_dir: Path = option("--config-dir", type=Path, default=Path.home() / ".config" / "seabox" / "docker",
                              help="Where to write the docker CLI config that carries your key."),
) -> None:
    """Point the unchanged docker CLI at Seabox: run `eval $(seabox docker-env)`.

    Writes CONFIG_DIR/config.json (mode 0600) with your API key as an HTTP header the docker CLI
    sends on every request, and prints the DOCKER_HOST and DOCKER_CONFIG exports.
    """
    url, key = load_credentials()
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    config_dir.mkdir(parents=True, exist_ok=True)
    config_dir.chmod(0o700)
    path = config_dir / "config.json"
    try:
        config = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    config.setdefault("HttpHeaders", {})["X-Api-Key"] = key
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"export DOCKER_HOST=tcp://{parts.hostname}:{port}")
    print(f"export DOCKER_CONFIG={shlex.quote(str(config_dir))}")
    if parts.scheme == "https":
        print("export DOCKER_TLS_VERIFY=1")
        print(f"export DOCKER_CERT_PATH={shlex.quote(str(config_dir))}")
    print("# run this command to configure your shell: eval $(seabox docker-env)")


def register(root: Group) -> None:
    for command, name in (
        (login, "login"),
        (info, "info"),
        (quota, "quota"),
        (version, "version"),
        (sizes, "sizes"),
        (events, "events"),
        (docker_env, "docker-env"),
    ):
        root.command(name, panel=PANEL)(command)
