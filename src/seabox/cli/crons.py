"""Scheduled job commands, the `seabox cron` group: create, ls, inspect, history, run, suspend, resume, rm."""

from __future__ import annotations

import json
from typing import Any

from seabox.cli.client import CliError, connect, each, inspect_all, parse_datetime, print_table, quoted
from seabox.cli.command import MARKED, Group, UsageError, argument, flag, option
from seabox.cli.containers import CMD, ENV, SIZE, env_list

cron_app = Group(
    "cron",
    "Manage scheduled jobs: a container started on a cron schedule (one per firing, NAME-<unix time>), "
    "removed when it ends; its exit code and last output stay in the history (the last 100 runs).",
    panel="Services",
)
NAME = argument("NAME", "Cron name.")
NAMES = argument("NAME", "Cron names.", many=True)
LOG_COLUMN = 60  # characters of the last output line in the history table


def cron_path(name: str, action: str = "") -> str:
    return f"/v1/crons/{quoted(name)}" + (f"/{action}" if action else "")


def when(value: str | None) -> str:
    """An API time as 'YYYY-MM-DD HH:MM:SS' in UTC ('' for none)."""
    return parse_datetime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def result_text(run: dict[str, Any] | None) -> str:
    """The LAST RESULT column: the latest ended run's status, with its exit code if it has one."""
    if run is None:
        return ""
    code = run.get("exit_code")
    return run["status"] + (f" ({code})" if code is not None else "")


def log_line(run: dict[str, Any]) -> str:
    """The last line of a run's output, cut to LOG_COLUMN characters (else its message)."""
    lines = [line for line in (run.get("log_tail") or "").splitlines() if line.strip()]
    text = lines[-1] if lines else run.get("message") or ""
    return text if len(text) <= LOG_COLUMN else text[: LOG_COLUMN - 3] + "..."


@cron_app.command("create", tail=MARKED)
def create(
    name: str = NAME,
    image: str = argument("IMAGE", "Image reference, one you have pulled (`seabox pull`)."),
    schedule: str = option("--schedule", required=True, help="When to fire: 5 cron fields (minute hour day month "
                           "weekday, e.g. '*/5 * * * *') or 6 with seconds first ('*/2 * * * * *': every 2 s), or "
                           "@hourly, @daily, ..."),
    cmd: list[str] | None = CMD,
    tz: str = option("--tz", default="UTC", help="IANA time zone the schedule is read in, e.g. Europe/Paris."),
    concurrency: str = option("--concurrency", default="allow", help="While a run still runs at the next firing: "
                              "allow (run both), forbid (skip the new one) or replace (stop the running one, start "
                              "the new)."),
    timeout: int = option("--timeout", default=3600, type=int, min=1,
                          help="Seconds a run may take before it is killed (timed-out)."),
    size: str | None = SIZE,
    env: list[str] | None = ENV,
) -> None:
    """Create a cron: run IMAGE [CMD...] on a schedule; prints its name. The image must be pulled first."""
    body: dict[str, Any] = {"name": name, "image": image, "schedule": schedule, "tz": tz,
                            "concurrency": concurrency, "timeout": timeout, "env": env_list(env)}
    if cmd:
        body["cmd"] = list(cmd)
    if size is not None:
        body["size"] = size
    print(connect().post("/v1/crons", body)["name"])


@cron_app.command("ls")
def ls(quiet: bool = flag("-q", "--quiet", help="Only print cron names.")) -> None:
    """List your crons: schedule, next run (UTC) and the result of the latest run that has ended."""
    crons = connect().get("/v1/crons")
    if quiet:
        for c in crons:
            print(c["name"])
        return
    rows = []
    for c in crons:
        spec = c["spec"]
        schedule = spec["schedule"] + (f" ({spec['tz']})" if spec["tz"] != "UTC" else "")
        rows.append([c["name"], schedule, "suspended" if c["suspended"] else when(c["next_run"]),
                     result_text(c.get("last_result")), spec["image"]])
    print_table(["NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT", "IMAGE"], rows)


@cron_app.command("inspect")
def inspect(names: list[str] = NAMES) -> None:
    """Show crons' details as a JSON array."""
    api = connect()
    inspect_all(names, lambda n: api.get(cron_path(n)))


@cron_app.command("history")
def history(
    name: str = NAME,
    tail: int = option("--tail", default=100, type=int, min=1, max=100, help="How many of the latest runs to show."),
    output: str = option("-o", "--output", default="table", help="table, or json (every field, the whole log tail)."),
) -> None:
    """Show a cron's last runs, oldest first: container, start, end (UTC), exit code, status and last output line."""
    if output not in ("table", "json"):
        raise UsageError(f"must be table or json, got {output!r}", "-o")
    runs = connect().get(cron_path(name, "history"), tail=tail)
    if output == "json":
        print(json.dumps(runs, indent=4))
        return
    rows = [[r.get("container") or "", when(r["scheduled_at"]), when(r.get("started_at")), when(r.get("finished_at")),
             "" if r.get("exit_code") is None else str(r["exit_code"]), r["status"], r["trigger"], log_line(r)]
            for r in runs]
    print_table(["CONTAINER", "SCHEDULED", "START", "END", "EXIT CODE", "STATUS", "TRIGGER", "LOG TAIL"], rows)


@cron_app.command("run")
def run(name: str = NAME) -> None:
    """Fire a cron now, outside its schedule (its concurrency policy does not apply); prints the run's container.

    A run that cannot start (its image removed, the tenant's capacity used up) is an error, recorded in the history.
    """
    started = connect().post(cron_path(name, "run"))
    if started["status"] == "failed":
        raise CliError(f"cron {name}: {started['message'] or 'the run failed'}")
    print(started.get("container") or "")


def _act(action: str) -> Any:
    def act(names: list[str] = NAMES) -> None:
        api = connect()
        each(names, lambda n: api.post(cron_path(n, action))["name"])
    return act


@cron_app.command("rm")
def rm(names: list[str] = NAMES) -> None:
    """Remove crons with their history; containers of runs still going are removed too."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(cron_path(name))
        return name

    each(names, remove)


suspend = _act("suspend")
suspend.__doc__ = "Stop firing crons until resumed (a run going on goes on)."
resume = _act("resume")
resume.__doc__ = "Fire crons again from now on (what fell while they were suspended is not caught up)."
cron_app.command("suspend")(suspend)
cron_app.command("resume")(resume)


def register(root: Group) -> None:
    root.add(cron_app)
