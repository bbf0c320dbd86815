"""Function commands, the `seabox func` group: create, ls, inspect, update, rm, call, get, logs, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from seabox.cli.client import CliError, Response, connect, each, inspect_all, print_table, quoted, report
from seabox.cli.command import ANYWHERE, Group, UsageError, argument, flag, option, tail
from seabox.cli.images import create_pulling

func_app = Group(
    "func",
    "Manage functions: an image run per call. stdio mode (default): each call runs a container, the "
    "request body on its stdin, its stdout the reply, request headers as Http_* environment variables. "
    "http mode: warm containers serve HTTP on $PORT. Each function has a public call URL "
    "(/call/NAME/SECRET, or .../sync to wait for the reply) that needs no API key.",
    panel="Services",
)
NAME = argument("NAME", "Function name.")
NAMES = argument("NAME...", "Function names.", many=True)
EXIT_HEADER = "X-Seabox-Exit-Code"


def func_path(name: str, action: str = "") -> str:
    return f"/v1/funcs/{quoted(name)}" + (f"/{action}" if action else "")


def _spec_options(size: str | None, timeout: int | None, concurrency: int | None, min_warm: int | None,
                  env: list[str] | None) -> dict[str, Any]:
    given = {"size": size, "timeout": timeout, "concurrency": concurrency, "min_warm": min_warm, "env": env or None}
    return {k: v for k, v in given.items() if v is not None}


SIZE = option("--size", help="Container size of each call (see `seabox sizes`).")
TIMEOUT = option("--timeout", type=int, help="Seconds a call may take, queue included (504 past it; default 300).")
CONCURRENCY = option("--concurrency", type=int, help="Calls of this function at once (default 10); more wait.")
MIN_WARM = option("--min-warm", type=int, help="http mode: replicas kept up while idle (0: scale to zero).")
ENV = option("-e", "--env", many=True, help="KEY=VALUE for every call's container.")


@func_app.command("create", tail=ANYWHERE)
def create(
    name: str = NAME,
    image: str = argument("IMAGE", "The image each call runs."),
    cmd: list[str] | None = tail("CMD", "Command (default: the image's)."),
    size: str | None = SIZE,
    timeout: int | None = TIMEOUT,
    concurrency: int | None = CONCURRENCY,
    min_warm: int | None = MIN_WARM,
    env: list[str] | None = ENV,
    mode: str = option("--mode", default="stdio", help="stdio (a container per call) or http (warm, serves $PORT)."),
    port: int | None = option("--port", type=int, help="http mode: the port the container serves (default 8080)."),
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
def ls(quiet: bool = flag("-q", "--quiet", help="Only print the names.")) -> None:
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
def inspect(names: list[str] = NAMES) -> None:
    """Show functions as a JSON array, each with its call URL (call_url)."""
    api = connect()
    inspect_all(names, lambda n: {**(f := api.get(func_path(n))), "call_url": api.url + f["call_path"]})


@func_app.command("update")
def update(
    name: str = NAME,
    image: str | None = option("--image", help="A new image."),
    cmd: str | None = option("--cmd", help="A new command, as a JSON array or one word."),
    size: str | None = SIZE,
    timeout: int | None = TIMEOUT,
    concurrency: int | None = CONCURRENCY,
    min_warm: int | None = MIN_WARM,
    env: list[str] | None = ENV,
    refresh: bool = flag("--refresh", help="Give it a new call secret (the old URL stops working)."),
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
def rm(names: list[str] = NAMES) -> None:
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
        raise UsageError(f"cannot read {data}: {exc.strerror}", "--data") from None


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
        raise SystemExit(code)


@func_app.command("call")
def call(
    name: str = NAME,
    sync: bool = flag("--sync", help="Wait for the reply and print it (default: print the call id)."),
    data: str | None = option("--data", "-d", help="The request body: a file, or - for stdin."),
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
    call_id: str = argument("CALL_ID", "The id `func call` printed."),
    wait: bool = flag("--wait", help="Wait until the call has ended."),
) -> None:
    """Print an async call's result (a result is answered once, then dropped); exits 2 while it still runs."""
    api = connect()
    response = api.request("GET", f"/v1/funcs/calls/{quoted(call_id)}", params={"wait": wait})
    if "X-Seabox-Call-Status" not in response.headers:
        api._check(response)
    if response.status_code == 202:
        report(f"call {call_id} is {response.json()['Status']}")
        raise SystemExit(2)
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
    name: str = NAME,
    call_id: str | None = option("--call", help="Only this call's output."),
    follow: bool = flag("-f", "--follow", help="Keep printing calls as they end."),
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
def status(name: str = NAME) -> None:
    """Calls queued and running now, and warm replicas (http mode)."""
    s = connect().get(func_path(name, "status"))
    print_table(["NAME", "MODE", "GENERATION", "RUNNING", "QUEUED", "WARM"],
                [[s["name"], s["mode"], str(s["generation"]), str(s["running"]), str(s["queued"]),
                  str(s["warm_replicas"])]])


def register(root: Group) -> None:
    root.add(func_app)
