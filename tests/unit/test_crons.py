"""Cron schedules (5 and 6 fields, time zones), what a pass does with a due cron (concurrency, catch-up) on a
fake clock, and the store recording each firing once however many servers claim it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from seabox.controllers.cron_plan import KEEP_MISSED, MISSED_AFTER, decide, plan
from seabox.errors import Forbidden, validation_error
from seabox.model.cron import COUNT_CAP, CronCreate, CronSpec, Schedule
from seabox.model.quota import Quota
from seabox.store.crons import KEEP_RUNS, CronStore, NewRun
from seabox.store.db import open_engine
from seabox.store.repo import Store

T0 = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC).timestamp()  # a whole minute, in winter


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# schedules -------------------------------------------------------------------------------------
def test_five_fields_fire_on_minutes_and_six_fields_read_the_first_as_seconds() -> None:
    assert Schedule.parse("*/5 * * * *").next_after(T0) == T0 + 300
    every2 = Schedule.parse("*/2 * * * * *")
    assert every2.seconds and every2.next_after(T0) == T0 + 2 and every2.next_after(T0 + 1.5) == T0 + 2
    assert Schedule.parse("30 * * * * *").next_after(T0) == T0 + 30  # second 30 of every minute
    assert Schedule.parse("@hourly").next_after(T0) == T0 + 3600


def test_a_schedule_is_read_in_its_time_zone() -> None:
    nine_paris = Schedule.parse("0 9 * * *", "Europe/Paris")
    assert nine_paris.next_after(T0) == at("2026-01-16T08:00:00+00:00")  # CET is UTC+1 in January
    assert nine_paris.next_after(at("2026-07-01T00:00:00+00:00")) == at("2026-07-01T07:00:00+00:00")  # CEST


@pytest.mark.parametrize(("body", "field"), [
    ({"schedule": "* * *"}, "schedule"),
    ({"schedule": "* * * * * * *"}, "schedule"),
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"schedule": "0 0 30 2 *"}, "schedule"),  # never fires
    ({"schedule": "whenever"}, "schedule"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"tz": "../../etc/passwd"}, "tz"),
    ({"concurrency": "sometimes"}, "concurrency"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 86401}, "timeout"),
    ({"name": "a" * 49}, "name"),
    ({"name": "-x"}, "name"),
    ({"size": "huge"}, "size"),
    ({"restart": "always"}, "restart"),
])
def test_bad_cron_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CronCreate.model_validate({"name": "job", "image": "busybox", "schedule": "* * * * *", **body})
    assert validation_error(exc.value).field == field


def test_a_cron_request_keeps_its_spec_without_its_name() -> None:
    req = CronCreate(name="job", image="busybox", schedule=" */2  * * * * * ", tz="Asia/Tokyo", concurrency="forbid")
    spec = req.spec()
    assert spec.schedule == "*/2 * * * * *" and spec.tz == "Asia/Tokyo" and spec.timeout == 3600
    assert "name" not in spec.model_dump()


def test_firings_are_counted_up_to_a_cap_and_the_latest_ones_kept() -> None:
    every = Schedule.parse("* * * * * *")
    assert every.firings(T0, T0 + 5, 3) == ([T0 + 3, T0 + 4, T0 + 5], 5)
    last, count = every.firings(T0, T0 + 10 * COUNT_CAP, 3)
    assert count == COUNT_CAP and last == [T0 + 10 * COUNT_CAP - 2, T0 + 10 * COUNT_CAP - 1, T0 + 10 * COUNT_CAP]


# concurrency -----------------------------------------------------------------------------------------
def test_concurrency_decides_what_a_firing_does_beside_a_running_run() -> None:
    assert [decide(p, 0) for p in ("allow", "forbid", "replace")] == ["run", "run", "run"]
    assert [decide(p, 1) for p in ("allow", "forbid", "replace")] == ["run", "skip", "replace"]


def test_a_due_firing_starts_a_container_named_after_its_time() -> None:
    p = plan("job", Schedule.parse("*/2 * * * * *"), "allow", T0, T0 + 2.3, running=1)
    assert [(r.scheduled_at, r.status, r.container_name, r.trigger) for r in p.runs] == [
        (T0 + 2, "running", f"job-{int(T0) + 2}", "schedule")]
    assert p.launch == [0] and not p.replace_open and p.last_fired == T0 + 2 and p.next_at == T0 + 4


def test_forbid_records_a_skip_and_replace_stops_the_running_run() -> None:
    every = Schedule.parse("* * * * * *")
    forbid = plan("job", every, "forbid", T0, T0 + 1.1, running=1)
    assert [r.status for r in forbid.runs] == ["skipped"] and forbid.launch == []
    replace = plan("job", every, "replace", T0, T0 + 1.1, running=1)
    assert [r.status for r in replace.runs] == ["running"] and replace.replace_open
    # two due in one pass: forbid runs the first and skips the second; replace starts only the last
    assert [r.status for r in plan("job", every, "forbid", T0, T0 + 2.1, running=0).runs] == ["running", "skipped"]
    both = plan("job", every, "replace", T0, T0 + 2.1, running=0)
    assert [r.status for r in both.runs] == ["replaced", "running"] and both.launch == [1]
    assert [r.status for r in plan("job", every, "allow", T0, T0 + 2.1, running=3).runs] == ["running", "running"]


def test_nothing_due_records_nothing() -> None:
    p = plan("job", Schedule.parse("*/5 * * * *"), "allow", T0, T0 + 10, running=0)
    assert p.runs == [] and p.last_fired == T0 and p.next_at == T0 + 300


# catch-up -----------------------------------------------------------------------------------------------
def test_firings_that_fell_while_no_server_ran_are_missed_and_one_catch_up_run_starts() -> None:
    every2 = Schedule.parse("*/2 * * * * *")
    now = T0 + 10 + 0.5  # back after firings at +2 .. +10; the one at +10 is on time
    p = plan("job", every2, "allow", T0, now, running=0)
    assert [(r.scheduled_at - T0, r.status) for r in p.runs] == [
        (2, "missed"), (4, "missed"), (6, "missed"), (8, "missed"), (10, "running")]
    catch_up = p.runs[-1]
    assert catch_up.trigger == "catch-up" and "4 missed" in catch_up.message and p.launch == [4]
    # back when no firing is on time: every one is missed and the catch-up runs at the pass's time
    late = plan("job", Schedule.parse("*/10 * * * * *"), "allow", T0, T0 + 35, running=0)
    assert [r.status for r in late.runs] == ["missed"] * 3 + ["running"]
    assert late.runs[-1].scheduled_at == T0 + 35 and late.runs[-1].trigger == "catch-up"
    assert late.last_fired == T0 + 30 and late.next_at == T0 + 40


def test_a_long_downtime_records_the_last_missed_firings_and_says_how_many() -> None:
    p = plan("job", Schedule.parse("* * * * * *"), "forbid", T0, T0 + 500, running=0)
    missed = [r for r in p.runs if r.status == "missed"]
    assert len(missed) == KEEP_MISSED and missed[-1].scheduled_at == T0 + 499
    [catch_up] = [r for r in p.runs if r.trigger == "catch-up"]
    assert catch_up.scheduled_at == T0 + 500 and "499 missed" in catch_up.message and "last 100" in catch_up.message
    huge = plan("job", Schedule.parse("* * * * * *"), "allow", T0, T0 + 3 * COUNT_CAP, running=0)
    assert f"more than {COUNT_CAP - 1}" in huge.runs[-1].message and len(huge.runs) == KEEP_MISSED + 1


def test_a_firing_late_by_less_than_the_grace_is_on_time() -> None:
    p = plan("job", Schedule.parse("*/5 * * * * *"), "allow", T0, T0 + 5 + MISSED_AFTER - 0.1, running=0)
    assert [(r.status, r.trigger) for r in p.runs] == [("running", "schedule")]


def test_a_catch_up_obeys_the_concurrency_policy() -> None:
    p = plan("job", Schedule.parse("* * * * * *"), "forbid", T0, T0 + 20, running=1)
    assert p.runs[-1].trigger == "catch-up" and p.runs[-1].status == "skipped" and p.launch == []


# the store ------------------------------------------------------------------------------------------------
@pytest.fixture
def crons(db_url: str) -> tuple[CronStore, CronStore, str]:
    """Two stores on one database (two servers) and a tenant's id."""
    tenant = Store(open_engine(db_url)).create_tenant("acme")
    return CronStore(open_engine(db_url)), CronStore(open_engine(db_url)), tenant.id


def _spec() -> CronSpec:
    return CronSpec(schedule="* * * * * *", image="busybox")


def test_a_firing_claimed_by_two_servers_is_recorded_once(crons: tuple[CronStore, CronStore, str]) -> None:
    a, b, tenant = crons
    a.create(tenant, "job", _spec(), T0, T0 + 1, quota=Quota("crons", 5))
    [seen_a] = a.due(T0 + 1.1)
    [seen_b] = b.due(T0 + 1.1)  # both servers saw it due
    run = [NewRun(T0 + 1, "schedule", "running", "job-1")]
    assert a.claim(seen_a, T0 + 1, T0 + 2, run, [], None) is not None
    assert b.claim(seen_b, T0 + 1, T0 + 2, run, [], None) is None  # compare-and-set lost: nothing written
    assert [r.scheduled_at.timestamp() for r in a.history(tenant, "job")] == [T0 + 1]
    # a stale view that still passed the compare-and-set would hit the unique (cron, time) and write nothing
    fresh = b.record(tenant, "job")
    stale = type(fresh)(fresh.tenant_id, fresh.name, fresh.spec, False, fresh.last_fired, fresh.next_at)
    assert b.claim(stale, T0 + 2, T0 + 3, [NewRun(T0 + 1, "schedule", "missed")], [], None) is None
    assert b.record(tenant, "job").last_fired == T0 + 1


def test_only_the_last_runs_are_kept_and_open_ones_stay(crons: tuple[CronStore, CronStore, str]) -> None:
    store, _, tenant = crons
    store.create(tenant, "job", _spec(), T0, T0 + 1, quota=Quota("crons", 5))
    first = store.add_run(tenant, "job", NewRun(T0, "manual", "running", "job-0"))
    for i in range(KEEP_RUNS + 20):
        store.add_run(tenant, "job", NewRun(T0 + 1 + i, "schedule", "missed"))
    runs = store.history(tenant, "job")
    assert len(runs) == KEEP_RUNS and runs[-1].scheduled_at.timestamp() == T0 + KEEP_RUNS + 20
    assert [r.run.id for r in store.open_runs()] == [first]  # still running: kept until it ends
    assert store.get(tenant, "job").last_result.status == "missed"  # type: ignore[union-attr]
    store.finish_run(first, "succeeded", 0, "done\n")
    assert store.get_run(first).log_tail == "done\n" and store.open_runs() == []
    assert store.get(tenant, "job").last_result.id == first  # type: ignore[union-attr]


def test_the_crons_quota_and_suspension(crons: tuple[CronStore, CronStore, str]) -> None:
    store, _, tenant = crons
    store.create(tenant, "a", _spec(), T0, T0 + 1, quota=Quota("crons", 1))
    with pytest.raises(Forbidden) as exc:
        store.create(tenant, "b", _spec(), T0, T0 + 1, quota=Quota("crons", 1))
    assert exc.value.field == "crons"
    store.set_suspended(tenant, "a", True, 0.0, None)
    assert store.due(T0 + 100) == [] and store.get(tenant, "a").next_run is None
    store.set_suspended(tenant, "a", False, T0 + 100, T0 + 101)
    assert store.record(tenant, "a").last_fired == T0 + 100 and [c.name for c in store.due(T0 + 101)] == ["a"]
