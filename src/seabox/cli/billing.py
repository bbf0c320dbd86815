"""Billing commands for tenants: `seabox usage`, `seabox invoice` and `seabox prices`."""

from __future__ import annotations

import json
from typing import Any

from seabox.cli.client import connect, parse_time, print_table
from seabox.cli.command import Group, UsageError, flag, option

PANEL = "Billing"
BY = ("size", "resource", "container", "day")


def _lines(report: dict[str, Any], by: str) -> None:
    heading = {"size": "METER", "resource": "RESOURCE", "container": "NAME", "day": "DAY"}[by]
    rows = [[x["key"], x["meter"], f"{x['quantity']} {x['unit']}", "$" + x["cost"]] for x in report["lines"]]
    print_table([heading, "METER", "QUANTITY", "COST"] if by != "size" else ["METER", "QUANTITY", "COST"],
                rows if by != "size" else [r[1:] for r in rows])
    print(f"total: ${report['total']}")


JSON = flag("--json", help="Print the API's JSON.")


def usage(
    since: float | None = option("--since", type=parse_time, help="From: 10m, 1h, unix seconds or an ISO time "
                                 "(default: the start of this month, UTC)."),
    until: float | None = option("--until", type=parse_time, help="Until: same forms as --since (default: now)."),
    by: str = option("--by", default="size", help="Group lines by size (meter: container size, storage, fip, "
                     "service), resource (kind), container (each resource by name) or day (UTC)."),
    container: str | None = option("--container", help="Only this container's use (name or id): its runs and its "
                                   "root filesystem."),
    as_json: bool = JSON,
) -> None:
    """What you have used and what it costs so far, to the second; what still runs is counted up to now.

    A container bills each running second by its size, at least 10 s per start; its root filesystem and
    volumes bill per GB-month from create to remove; a FIP bills a month for each calendar month it was
    held in; a service bills each second it exists.
    """
    if by not in BY:
        raise UsageError(f"use one of {', '.join(BY)}", "--by")
    params = {k: v for k, v in (("since", since), ("until", until), ("container", container)) if v is not None}
    report = connect().get("/v1/usage", by=by, **params)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"usage from {report['since']} until {report['until']}")
    _lines(report, by)


def invoice(
    month: str | None = option("--month", help="YYYY-MM (default: this month, a draft so far)."),
    as_json: bool = JSON,
) -> None:
    """A month's invoice: issued (and never changed) on the first day after the month ends; this month's is a draft."""
    params = {"month": month} if month else {}
    bill = connect().get("/v1/invoice", **params)
    if as_json:
        print(json.dumps(bill, indent=2))
        return
    issued = f", issued {bill['issued_at']}" if bill["issued_at"] else " (so far)"
    print(f"invoice {bill['month']}: {bill['status']}{issued}")
    _lines(bill, "size")


def prices(as_json: bool = JSON) -> None:
    """The price book in force: dollars per unit of each meter."""
    book = connect().get("/v1/prices")
    if as_json:
        print(json.dumps(book, indent=2))
        return
    print_table(["METER", "PRICE", "PER"], [[k, "$" + v, book["units"][k]] for k, v in book["prices"].items()])


def register(root: Group) -> None:
    for command, name in ((usage, "usage"), (invoice, "invoice"), (prices, "prices")):
        root.command(name, panel=PANEL)(command)
