"""Function commands, the `seabox func` group: create, ls, inspect, update, rm, call, get, logs, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from seabox.cli.client import CliError, Response, connect, each, inspect_all, print_table, quoted, report
from seabox.cli.images import create_pulling

func_app = typer.Typer(
    help="Manage functions: an image run per call. stdio mode (default): each call runs a container, the "
    "request body on its stdin, its stdout the reply, request headers as Http_* environment variables. "
    "http mode: warm containers serve HTTP on $PORT. Each function has a public call URL "
    "(/call/NAME/SECRET, or .../sync to wait for the reply) that needs no API key.",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="Function name.")]
EXIT_HEADER = "X-Seabox-Exit-Code"


def func_path(name: str, action: str = "") -> str:
    return f"/v1/funcs/{quoted(name)}" + (f"/{action}" if action else "")


def _spec_options(size: str | None, timeout: int | None, concurrency: int | None, min_warm: int | None,
                  env: list[str] | None) -> dict[str, Any]:
    given = {"size": size, "timeout": timeout, "concurrency": concurrency, "min_warm": min_warm, "env": env or None}
    return {k: v for k, v in given.items() if v is not None}


SizeOpt = Annotated[str | None, typer.Option("--size", help="Container size of each call (see `seabox sizes`).")]
TimeoutOpt = Annotated[int | None, typer.Option("--timeout", help="Seconds a call may take, queue included (504 past it; default 300).")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", help="Calls of this function at once (default 10); more wait.")]
MinWarmOpt = Annotated[int | None, typer.Option("--min-warm", help="http mode: replicas kept up while idle (0: scale to zero).")]
EnvOpt = Annotated[list[str] | None, typer.Option("-e", "--env", help="KEY=VALUE for every call's container.")]


@func_app.command("create", context_settings={"ignore_unknown_options": True})
def create(
    name: Name,
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image each call runs.")],
    cmd: Annotated[list[str] | None, typer.Argument(metavar="[CMD...]", help="Command (default: the image's).")] = None,
    size: SizeOpt = None,
    timeout: TimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    min_warm: MinWarmOpt = None,
    env: EnvOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="stdio (a container per call) or http (warm, serves $PORT).")] = "stdio",
    port: Annotated[int | None, typer.Option("--port", help="http mode: the port the container serves (default 8080).")] = None,
) -> None:
    """Create a function; prints its public call URL. The image is pulled first if the server does not have it.

    Options may come anywhere; put `--` before a command whose own options are also ours (-e, --size, ...).
    """
    body: dict[str, Any] = {"name": name, "image": image, "mode": mode,
                            **_spec_options(size, timeout, concurrency, min_warm, env)}
    if cmd:
        body["cmd"] = list(cmd)
    if port is not None:
        body["port"] = port
    api = connect()
    fn = create_pulling(api, "/v1/funcs", body)
    print(api.url + fn["call_path"])


@func_app.command("ls")
def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print the names.")] = False) -> None:
    """List your functions."""
    fns = connect().get("/v1/funcs")
    if quiet:
        for f in fns:
            print(f["spec"]["name"])
        return
    rows = [[f["spec"]["name"], f["spec"]["image"], " ".join(f["spec"].get("cmd") or []), f["spec"]["mode"],
             f["spec"]["size"], str(f["spec"]["timeout"]), str(f["spec"]["concurrency"]), str(f["generation"])]
            for f in fns]
    print_table(["NAME", "IMAGE", "COMMAND", "MODE", "SIZE", "TIMEOUT", "CONCURRENCY", "GENERATION"], rows)


@func_app.command("inspect")
def inspect(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Function names.")]) -> None:
    """Show functions as a JSON array, each with its call URL (call_url)."""
    api = connect()
    inspect_all(names, lambda n: {**(f := api.get(func_path(n))), "call_url": api.url + f["call_path"]})


@func_app.command("update")
def update(
    name: Name,
    image: Annotated[str | None, typer.Option("--image", help="A new image.")] = None,
    cmd: Annotated[str | None, typer.Option("--cmd", help="A new command, as a JSON array or one word.")] = None,
    size: SizeOpt = None,
    timeout: TimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    min_warm: MinWarmOpt = None,
    env: EnvOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Give it a new call secret (the old URL stops working).")] = False,
) -> None:
    """Change a function (the fields given); prints its call URL."""
    body: dict[str, Any] = {**_spec_options(size, timeout, concurrency, min_warm, env), "refresh": refresh}
    if image is not None:
        body["image"] = image
    if cmd is not None:
        body["cmd"] = json.loads(cmd) if cmd.startswith("[") else [cmd]
    api = connect()
    print(api.url + api.call("PATCH", func_path(name), body=body)["call_path"])


@func_app.command("rm")
def rm(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Function names.")]) -> None:
    """Remove functions (refused while a call of one is queued or running)."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(func_path(name))
        return name

    each(names, remove)


def _data(data: str | None) -> bytes:
    if data is None:
        return b""
    if data == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {data}: {exc.strerror}", param_hint="'--data'") from None


def _print_reply(response: Response) -> None:
    """A function's reply: its body to stdout; a non-zero exit (or an error) as the command's failure."""
    status = response.headers.get("X-Seabox-Call-Status", "done")
    if status != "done" or (response.status_code >= 400 and EXIT_HEADER not in response.headers):
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = response.text
        raise CliError(f"{message} ({response.status_code})", status=response.status_code)
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    code = int(response.headers.get(EXIT_HEADER, "0"))
    if code:
        raise typer.Exit(code)


@func_app.command("call")
def call(
    name: Name,
    sync: Annotated[bool, typer.Option("--sync", help="Wait for the reply and print it (default: print the call id).")] = False,
    data: Annotated[str | None, typer.Option("--data", "-d", help="The request body: a file, or - for stdin.")] = None,
) -> None:
    """Call a function. Async (default): prints the call id, for `func get`; --sync prints the reply."""
    api = connect()
    response = api.request("POST", func_path(name, "call"), params={"sync": sync}, content=_data(data))
    if not sync and response.status_code == 202:
        print(response.json()["CallId"])
        return
    if not sync:
        api._check(response)
    _print_reply(response)


@func_app.command("get")
def get(
    call_id: Annotated[str, typer.Argument(metavar="CALL_ID", help="The id `func call` printed.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the call has ended.")] = False,
) -> None:
    """Print an async call's result (a result is answered once, then dropped); exits 2 while it still runs."""
    api = connect()
    response = api.request("GET", f"/v1/funcs/calls/{quoted(call_id)}", params={"wait": wait})
    if "X-Seabox-Call-Status" not in response.headers:
        api._check(response)
    if response.status_code == 202:
        report(f"call {call_id} is {response.json()['Status']}")
        raise typer.Exit(2)
    _print_reply(response)


def _print_log(item: dict[str, Any]) -> None:
    print(f"==> call {item['call']} ({item['status']}, HTTP {item['result_status']}) <==")
    if item.get("error"):
        print(item["error"])
    sys.stdout.write(item["log"])
    if item["log"] and not item["log"].endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


@func_app.command("logs")
def logs(
    name: Name,
    call_id: Annotated[str | None, typer.Option("--call", help="Only this call's output.")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing calls as they end.")] = False,
) -> None:
    """The output (stdout and stderr) of the function's latest calls, or of one call."""
    api = connect()
    if call_id is not None:
        item = api.get(func_path(name, "logs"), call=call_id)
        sys.stdout.write(item["log"])
        if item.get("error"):
            report(item["error"])
        return
    for item in api.stream("GET", func_path(name, "logs"), params={"follow": follow}):
        _print_log(item)


@func_app.command("status")
def status(name: Name) -> None:
    """Calls queued and running now, and warm replicas (http mode)."""
    s = connect().get(func_path(name, "status"))
    print_table(["NAME", "MODE", "GENERATION", "RUNNING", "QUEUED", "WARM"],
                [[s["name"], s["mode"], str(s["generation"]), str(s["running"]), str(s["queued"]),
                  str(s["warm_replicas"])]])


def register(app: typer.Typer) -> None:
    app.add_typer(func_app, name="func", rich_help_panel="Services")
