"""Per-second billing through the real server and the CLI: seconds billed match a container's real run time
(within 1 s, the 10 s minimum applied), a restart of the server while a container runs, prices and bad input."""

from __future__ import annotations

import csv
import io
import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.docker_fixtures import native, ok, pull, until, wiped_tenant
from tests.fixtures.server import Server, own_server


@pytest.fixture
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    with wiped_tenant(server, "bill", "containers") as name:
        pull(server, name, busybox_image)
        yield name


def usage(server: Server, tenant: str, *args: str) -> dict[str, Any]:
    return json.loads(ok(server.cli("usage", "--json", *args, tenant=tenant)))


def ran_for(server: Server, tenant: str, name: str) -> float:
    """Seconds NAME ran, from its own StartedAt and FinishedAt as inspect shows them."""
    with native(server, tenant) as client:
        status = client.get(f"/v1/containers/{name}").json()["status"]
    return (datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"])).total_seconds()


def exited(server: Server, tenant: str, name: str) -> bool:
    with native(server, tenant) as client:
        return client.get(f"/v1/containers/{name}").json()["status"]["state"] == "exited"


def billed(report: dict[str, Any], name: str) -> Decimal:
    return sum((Decimal(x["quantity"]) for x in report["lines"] if x["key"] == name
                and x["meter"].startswith("container.")), Decimal(0))


def test_seconds_billed_match_the_real_run_time_and_a_short_run_bills_ten(
    server: Server, tenant: str, busybox_image: str,
) -> None:
    ok(server.cli("run", "-d", "--name", "short", "--size", "s1", busybox_image, "sleep", "1", tenant=tenant))
    ok(server.cli("run", "-d", "--name", "long", busybox_image, "sleep", "11", tenant=tenant))
    until(lambda: exited(server, tenant, "long"), budget=30, what="long exited")
    report = usage(server, tenant, "--by", "container")
    assert billed(report, "short") == 10  # ran about a second: the minimum
    assert abs(billed(report, "long") - Decimal(ran_for(server, tenant, "long"))) <= 1, report
    meters = {x["meter"] for x in usage(server, tenant)["lines"]}
    assert {"container.s1", "container.s4", "storage"} <= meters  # the sizes, and the root filesystems
    table = ok(server.cli("usage", tenant=tenant))
    assert "container.s4" in table and "total: $" in table
    # ps --cost: each container's own cost, its runs and root filesystem, by id (names may be reused)
    header, *lines = ok(server.cli("ps", "-a", "--cost", tenant=tenant)).splitlines()
    assert "COST" in header.split()
    by_id = {x["resource_id"]: Decimal(0) for x in report["lines"]}
    for x in report["lines"]:
        by_id[x["resource_id"]] += Decimal(x["cost"])
    with native(server, tenant) as client:
        long_id = client.get("/v1/containers/long").json()["id"]
    [row] = [line for line in lines if line.endswith(" long")]
    [shown] = [Decimal(cell[1:]) for cell in row.split() if cell.startswith("$")]
    assert abs(shown - by_id[long_id]) < Decimal("0.00001"), row  # its root filesystem still bills meanwhile
    draft = json.loads(ok(server.cli("invoice", "--json", tenant=tenant)))
    assert draft["status"] == "draft" and Decimal(draft["total"]) > 0
    # the operator's export and metrics carry the same use
    data_dir = ["--data-dir", str(server.data_dir)]
    exported = list(csv.DictReader(io.StringIO(ok(server.cli("admin", "usage", "export", *data_dir)))))
    mine = [r for r in exported if r["tenant"] == tenant and r["resource"] == "short"
            and r["meter"].startswith("container.")]
    assert [Decimal(r["quantity"]) for r in mine] == [10], exported
    events = json.loads(ok(server.cli("admin", "usage", "export", "--format", "cloudevents", *data_dir)))
    [event] = [e for e in events if e["subject"] == tenant and e["data"]["resource"] == "long"
               and e["data"]["meter"] == "container.s4"]
    assert event["specversion"] == "1.0" and event["type"] == "seabox.usage" and event["id"]
    token = ok(server.cli("admin", "metrics-token", *data_dir)).strip().splitlines()[-1]
    scraped = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert f'seabox_tenant_usage_dollars{{tenant="{tenant}",meter="container.s1"}}' in scraped
    # another tenant sees none of it
    with wiped_tenant(server, "bill-other", "containers") as other:
        assert usage(server, other)["lines"] == []
        r = server.cli("usage", "--container", "long", tenant=other)
        assert r.returncode == 1 and "no such container" in r.stderr, r
    only = usage(server, tenant, "--container", "long")
    assert {x["meter"] for x in only["lines"]} == {"container.s4", "storage"}


def test_bad_windows_months_and_groups_are_refused_naming_them(server: Server, tenant: str) -> None:
    r = server.cli("usage", "--since", "1h", "--until", "2h", tenant=tenant)
    assert r.returncode == 1 and "until" in r.stderr, r
    r = server.cli("invoice", "--month", "2026-13", tenant=tenant)
    assert r.returncode == 1 and "month" in r.stderr, r
    with native(server, tenant) as client:
        bad = client.get("/v1/usage", params={"by": "colour"})
        assert bad.status_code == 400 and "by" in bad.json()["message"]
        assert client.get("/v1/usage", params={"since": "soon"}).status_code == 400


def test_a_container_running_while_the_server_was_killed_bills_the_time_it_really_ran(
    registry: str, busybox_image: str,
) -> None:
    with own_server(registry, "bill") as srv:
        pull(srv, "alice", busybox_image)
        ok(srv.cli("run", "-d", "--name", "job", busybox_image, "sleep", "11", tenant="alice"))
        until(lambda: billed(usage(srv, "alice", "--by", "container"), "job") > 0, what="job billed")
        srv.stop(signal.SIGKILL)
        time.sleep(13)  # it exits while no server runs: billed to then, not to when the server hears of it
        srv.start()
        until(lambda: exited(srv, "alice", "job"), budget=20, what="job seen exited")
        assert abs(billed(usage(srv, "alice", "--by", "container"), "job") - Decimal(ran_for(srv, "alice", "job"))) <= 1

        # the operator's price change applies from now on, and the tenant sees it
        r = srv.cli("admin", "prices", "set", "container.s4=0.00001", "--data-dir", str(srv.data_dir))
        assert r.returncode == 0, r
        book = json.loads(ok(srv.cli("prices", "--json", tenant="alice")))
        assert book["prices"]["container.s4"] == "0.00001" and book["units"]["fip"] == "month"
        r = srv.cli("admin", "prices", "set", "container.s4=-1", "--data-dir", str(srv.data_dir))
        assert r.returncode == 1 and "container.s4" in r.stdout + r.stderr


def test_a_spend_limit_refuses_new_creates_and_with_stop_running_stops_what_runs(
    server: Server, tenant: str, busybox_image: str,
) -> None:
    def admin(*args: str) -> None:
        r = server.cli("admin", "spend-limit", *args, "--data-dir", str(server.data_dir))
        assert r.returncode == 0, r

    # a shell that exits at SIGTERM (sleep as PID 1 ignores it, and a stop waits out the 10 s timeout)
    ok(server.cli("run", "-d", "--name", "keeper", busybox_image, "sh", "-c",
                  "trap 'exit 0' TERM; while true; do sleep 1; done", tenant=tenant))
    until(lambda: usage(server, tenant)["total"] != "0.000000", what="some spend")
    admin("set", tenant, "0.000001")
    r = server.cli("run", "-d", "--name", "more", busybox_image, "true", tenant=tenant)
    assert r.returncode == 1 and "spend limit of $0.000001 reached" in r.stderr, r
    r = server.cli("volume", "create", "data", tenant=tenant)
    assert r.returncode == 1 and "spend limit" in r.stderr, r
    with native(server, tenant) as client:
        refused = client.post("/v1/fips", json={"count": 1})
        assert refused.status_code == 402 and refused.json()["field"] == "spend_limit"
        grown = client.post("/v1/containers/keeper/update", json={"size": "m1"})  # a live resize too
        assert grown.status_code == 402 and client.get("/v1/containers/keeper").json()["spec"]["size"] == "s4", grown.text
        assert [c["name"] for c in client.get("/v1/containers", params={"all": "true"}).json()] == ["keeper"]
    assert not exited(server, tenant, "keeper")  # without --stop-running, what runs keeps running
    admin("set", tenant, "0.000001", "--stop-running")
    until(lambda: exited(server, tenant, "keeper"), budget=30, what="keeper stopped at the limit")
    admin("rm", tenant)
    ok(server.cli("run", "-d", "--name", "more", busybox_image, "true", tenant=tenant))
