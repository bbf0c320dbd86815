"""Scheduled jobs end to end through the CLI and a real server: firing on a seconds schedule, history with exit
codes and output, concurrency policies, timeouts, suspend/resume, catch-up after a restart, exactly-once on two servers."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from seabox.store.db import open_engine
from seabox.store.leases import Leases
from tests.e2e.docker_fixtures import native, pull, unique, until, wiped_tenant
from tests.fixtures.cluster import running_cluster
from tests.fixtures.postgres import Cluster as PgCluster
from tests.fixtures.server import Server, own_server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runc, netns, nftables"),
]
FINAL = {"succeeded", "failed", "timed-out", "skipped", "missed", "replaced"}


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@pytest.fixture
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    with wiped_tenant(server, "cron", "crons", "containers") as name:
        pull(server, name, busybox_image)
        yield name


def cli(server: Server, tenant: str) -> Callable[..., str]:
    def run(*args: str) -> str:
        return server.cli(*args, tenant=tenant, check=True).stdout
    return run


def history(server: Server, tenant: str, name: str) -> list[dict[str, Any]]:
    return json.loads(server.cli("cron", "history", name, "-o", "json", tenant=tenant, check=True).stdout)


def containers(server: Server, tenant: str) -> list[str]:
    with native(server, tenant) as client:
        return [c["name"] for c in client.get("/v1/containers", params={"all": "true"}).json()]


def test_a_seconds_schedule_fires_and_keeps_exit_code_and_output_and_removes_its_containers(
    server: Server, tenant: str, busybox_image: str
) -> None:
    seabox = cli(server, tenant)
    assert seabox("cron", "create", "tick", "--schedule", "*/2 * * * * *", busybox_image,
                  "sh", "-c", "echo hello from $HOSTNAME; echo to stderr >&2; exit 3").strip() == "tick"
    runs = until(lambda: (lambda done: done if len(done) >= 2 else None)(
        [r for r in history(server, tenant, "tick") if r["status"] != "running"]), 8, "two finished runs")
    for r in runs:
        assert r["status"] == "failed" and r["exit_code"] == 3 and r["trigger"] == "schedule", r
        assert "hello from" in r["log_tail"] and "to stderr" in r["log_tail"], r
        scheduled = int(ts(r["scheduled_at"]))
        assert r["container"] == f"tick-{scheduled}" and scheduled % 2 == 0, r
        assert r["started_at"] and r["finished_at"] >= r["started_at"]
    times = [r["scheduled_at"] for r in history(server, tenant, "tick")]
    assert len(times) == len(set(times))
    # the containers of finished runs are gone
    finished = {r["container"] for r in history(server, tenant, "tick") if r["status"] != "running"}
    assert not finished & set(containers(server, tenant))
    listing = seabox("cron", "ls")
    header, row = listing.splitlines()[0], next(line for line in listing.splitlines() if line.startswith("tick "))
    assert header.split()[:5] == ["NAME", "SCHEDULE", "NEXT", "RUN", "LAST"], listing
    assert "*/2 * * * * *" in row and "failed (3)" in row, listing
    table = seabox("cron", "history", "tick", "--tail", "2")
    assert len(table.splitlines()) == 3 and "CONTAINER" in table and "EXIT CODE" in table, table
    [inspected] = json.loads(seabox("cron", "inspect", "tick"))
    assert inspected["spec"]["schedule"] == "*/2 * * * * *" and inspected["next_run"], inspected
    seabox("cron", "rm", "tick")
    assert seabox("cron", "ls", "-q") == ""
    until(lambda: not [n for n in containers(server, tenant) if n.startswith("tick-")], 5, "its containers removed")


def test_forbid_skips_firings_while_a_run_is_running(server: Server, tenant: str, busybox_image: str) -> None:
    seabox = cli(server, tenant)
    seabox("cron", "create", "one", "--schedule", "* * * * * *", "--concurrency", "forbid", busybox_image, "sleep", "3")
    runs = until(lambda: (lambda h: h if sum(r["status"] == "skipped" for r in h) >= 2 else None)(
        history(server, tenant, "one")), 6, "skipped firings")
    assert sum(r["status"] == "running" for r in runs) <= 1, runs
    first = runs[0]
    assert first["status"] in ("running", "succeeded"), runs
    later = until(lambda: (lambda h: h if any(r["status"] == "succeeded" for r in h) else None)(
        history(server, tenant, "one")), 6, "the first run to end")
    done = next(r for r in later if r["status"] == "succeeded")
    skipped_during = [r for r in later if r["status"] == "skipped" and done["started_at"] < r["scheduled_at"] < done["finished_at"]]
    assert skipped_during, later


def test_replace_stops_the_running_run_for_the_new_one(server: Server, tenant: str, busybox_image: str) -> None:
    seabox = cli(server, tenant)
    seabox("cron", "create", "swap", "--schedule", "*/2 * * * * *", "--concurrency", "replace", busybox_image,
           "sh", "-c", "echo started; sleep 30")
    # a run is marked replaced, then killed, then its end recorded
    runs = until(lambda: (lambda h: h if any(r["status"] == "replaced" and r["finished_at"] for r in h) else None)(
        history(server, tenant, "swap")), 8, "a replaced run that ended")
    replaced = next(r for r in runs if r["status"] == "replaced" and r["finished_at"])
    assert replaced["exit_code"] == 137 and "started" in replaced["log_tail"], replaced
    assert sum(r["status"] == "running" for r in runs) == 1, runs
    # the run's end is recorded first (a crash then loses nothing), its container removed right after
    until(lambda: replaced["container"] not in containers(server, tenant), 5, "the replaced run's container removed")


def test_a_run_past_its_timeout_is_killed(server: Server, tenant: str, busybox_image: str) -> None:
    seabox = cli(server, tenant)
    seabox("cron", "create", "slow", "--schedule", "*/10 * * * * *", "--timeout", "1", busybox_image,
           "sh", "-c", "echo working; sleep 60")
    seabox("cron", "run", "slow")  # now, rather than waiting for the schedule
    runs = until(lambda: [r for r in history(server, tenant, "slow") if r["status"] == "timed-out" and r["finished_at"]],
                 6, "a timeout")
    r = runs[0]
    assert r["exit_code"] == 137 and "working" in r["log_tail"], r
    assert ts(r["finished_at"]) - ts(r["started_at"]) <= 3, r


def test_suspend_stops_firing_and_resume_and_run_fire_again(server: Server, tenant: str, busybox_image: str) -> None:
    seabox = cli(server, tenant)
    seabox("cron", "create", "nap", "--schedule", "* * * * * *", busybox_image, "true")
    until(lambda: history(server, tenant, "nap"), 4, "a first run")
    assert seabox("cron", "suspend", "nap").strip() == "nap"
    assert "suspended" in seabox("cron", "ls")
    time.sleep(0.5)  # a firing claimed just before the suspension may still be recorded
    count = len(history(server, tenant, "nap"))
    time.sleep(2.5)
    assert len(history(server, tenant, "nap")) == count
    manual = seabox("cron", "run", "nap").strip()
    assert manual.startswith("nap-"), manual
    runs = until(lambda: [r for r in history(server, tenant, "nap") if r["trigger"] == "manual" and r["status"] != "running"],
                 5, "the manual run to end")
    assert runs[0]["status"] == "succeeded" and runs[0]["exit_code"] == 0 and runs[0]["container"] == manual
    seabox("cron", "resume", "nap")
    until(lambda: [r for r in history(server, tenant, "nap") if r["trigger"] == "schedule"][-1]["scheduled_at"]
          > runs[0]["scheduled_at"], 4, "firing again")
    assert not [r for r in history(server, tenant, "nap") if r["status"] == "missed"]


def test_bad_requests_name_the_field_and_create_nothing(server: Server, tenant: str, busybox_image: str) -> None:
    with native(server, tenant) as client:
        base = {"name": "bad", "image": busybox_image, "schedule": "* * * * *"}
        for change, field in (({"schedule": "61 * * * *"}, "schedule"), ({"schedule": "* * *"}, "schedule"),
                              ({"schedule": "* * * * * * *"}, "schedule"), ({"tz": "Mars/Olympus"}, "tz"),
                              ({"image": "no-such-image:1"}, "image"), ({"concurrency": "sometimes"}, "concurrency"),
                              ({"timeout": 0}, "timeout"), ({"timeout": 10 ** 9}, "timeout"),
                              ({"name": "x" * 60}, "name"), ({"size": "huge"}, "size")):
            r = client.post("/v1/crons", json={**base, **change})
            assert 400 <= r.status_code < 500 and r.json().get("field") == field, (change, r.status_code, r.text)
        assert client.get("/v1/crons").json() == []
        assert client.get("/v1/crons/none").status_code == 404
        assert client.get("/v1/crons/none/history").status_code == 404
        assert client.post("/v1/crons", json={**base, "tz": "Europe/Paris"}).status_code == 201
        assert client.post("/v1/crons", json=base).json()["field"] == "name"  # taken
    result = server.cli("cron", "create", "bad2", "--schedule", "nope", busybox_image, tenant=tenant)
    assert result.returncode == 1 and "schedule" in result.stderr, result.stderr


def test_another_tenants_cron_is_not_found_and_junk_never_gets_a_500(
    server: Server, tenant: str, busybox_image: str
) -> None:
    with native(server, tenant) as alice, native(server, unique("cron-eve")) as eve:
        r = alice.post("/v1/crons", json={"name": "mine", "image": busybox_image, "schedule": "0 0 1 1 *"})
        assert r.status_code == 201, r.text
        for method, path in (("GET", "/v1/crons/mine"), ("GET", "/v1/crons/mine/history"),
                             ("POST", "/v1/crons/mine/run"), ("POST", "/v1/crons/mine/suspend"),
                             ("POST", "/v1/crons/mine/resume"), ("DELETE", "/v1/crons/mine")):
            assert eve.request(method, path).status_code == 404, (method, path)
        assert eve.get("/v1/crons").json() == [] and alice.get("/v1/crons/mine").status_code == 200
        failures = []
        for body in (b"", b"null", b"[]", b"1", b"{}", b'{"name": null}', b'{"schedule": 5}',
                     b'{"name": "j", "image": "busybox", "schedule": "* * * * *", "cmd": "x"}',
                     b'{"name": "j", "image": "busybox", "schedule": "* * * * *", "tz": ""}',
                     b'{"name": "j", "image": "busybox", "schedule": "' + b"*" * 5000 + b'"}',
                     b'{"name": "j", "image": "busybox", "schedule": "* * * * *", "env": {"A": 1}}'):
            r = alice.post("/v1/crons", content=body)
            if r.status_code >= 500 or r.status_code < 400:
                failures.append((body[:80], r.status_code, r.text[:200]))
        for tail in ("", "x", "-1", "1e999", "nan", "101", "9" * 30):
            r = alice.get("/v1/crons/mine/history", params={"tail": tail})
            if r.status_code >= 500:
                failures.append((tail, r.status_code, r.text[:200]))
        assert not failures, failures
        assert [c["name"] for c in alice.get("/v1/crons").json()] == ["mine"]


def test_firings_missed_while_the_server_was_down_are_recorded_and_caught_up_once(
    registry: str, busybox_image: str
) -> None:
    with own_server(registry, "cron") as srv:
        pull(srv, "alice", busybox_image)
        seabox = cli(srv, "alice")
        seabox("cron", "create", "nightly", "--schedule", "*/2 * * * * *", busybox_image, "echo", "caught up")
        until(lambda: [r for r in history(srv, "alice", "nightly") if r["status"] == "succeeded"], 6, "a first run")
        srv.stop()
        time.sleep(7)  # three or four firings fall while no server runs
        srv.start()
        runs = until(lambda: (lambda h: h if [r for r in h if r["trigger"] == "catch-up" and r["status"] != "running"]
                              else None)(history(srv, "alice", "nightly")), 8, "the catch-up run")
        missed = [r for r in runs if r["status"] == "missed"]
        catch_up = [r for r in runs if r["trigger"] == "catch-up"]
        assert len(missed) >= 2, runs
        assert len(catch_up) == 1 and catch_up[0]["status"] == "succeeded", runs
        assert "caught up" in catch_up[0]["log_tail"] and "missed firing" in catch_up[0]["message"], catch_up
        times = [r["scheduled_at"] for r in runs]
        assert len(times) == len(set(times))


@pytest.fixture
def pg(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


def test_two_servers_on_one_database_fire_each_time_once(registry: str, busybox_image: str, pg: str) -> None:
    with running_cluster(registry, nodes=1, database_url=pg, servers=2) as two:
        key = two.server.tenant("alice")
        a, b = (httpx.Client(base_url=s.url, headers={"X-Api-Key": key}, timeout=60) for s in two.servers)
        with a, b:
            last = json.loads(a.post("/v1/images/pull", json={"image": busybox_image}).text.splitlines()[-1])
            assert "image" in last, last
            r = b.post("/v1/crons", json={"name": "every", "schedule": "* * * * * *", "image": busybox_image,
                                          "cmd": ["true"]})
            assert r.status_code == 201, r.text
            time.sleep(3)
            holder = Leases(open_engine(pg)).holder("crons")
            assert holder is not None
            running = next(s for s in two.servers if s.proc is not None and f":{s.proc.pid}:" in holder.owner)
            running.stop(signal.SIGTERM)  # the other server takes over at its next tick
            survivor = a if running is two.servers[1] else b
            time.sleep(3)
            survivor.post("/v1/crons/every/suspend")
            time.sleep(1)
            runs = survivor.get("/v1/crons/every/history").json()
        times = [round(ts(r["scheduled_at"])) for r in runs]
        assert len(times) == len(set(times)), runs
        assert times == list(range(times[0], times[0] + len(times))), runs  # every second, none twice, none lost
        assert len(times) >= 5 and not [r for r in runs if r["status"] == "missed"], runs
