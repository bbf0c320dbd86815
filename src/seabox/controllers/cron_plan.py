"""What one controller pass does with a due cron: which firings run, which are skipped, replaced or missed (pure).

A firing more than MISSED_AFTER seconds late when a pass first sees it fell while no server ran the
crons (the control plane was down, or its server died holding the lease): it is recorded as missed.
When a pass finds missed firings it starts ONE catch-up run for all of them: the latest firing due
now if there is one (it is late by less than MISSED_AFTER), else a run at the pass's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seabox.model.cron import COUNT_CAP, Concurrency, Schedule
from seabox.store.crons import NewRun

MISSED_AFTER = 3.0  # seconds late after which a firing counts as missed
KEEP_MISSED = 100  # missed firings recorded one by one per pass (the catch-up run says how many there were)
BATCH = 8  # on-time firings one pass handles (a 1 s schedule has at most MISSED_AFTER + 1 due at once)


def container_name(cron: str, at: float) -> str:
    """The container of a run: NAME-<unix time>."""
    return f"{cron}-{int(at)}"


@dataclass
class Plan:
    """The rows one pass records for a cron, which of them start a container, and where the cron goes next."""

    runs: list[NewRun] = field(default_factory=list)
    launch: list[int] = field(default_factory=list)  # indexes into runs
    replace_open: bool = False  # stop the cron's running runs first (concurrency replace)
    last_fired: float = 0.0
    next_at: float = 0.0


def plan(name: str, schedule: Schedule, policy: Concurrency, last_fired: float, now: float, running: int) -> Plan:
    """The plan for cron NAME whose firings up to LAST_FIRED are recorded, at NOW, with RUNNING runs still open."""
    firings, total = schedule.firings(last_fired, now, KEEP_MISSED + BATCH)
    result = Plan(last_fired=firings[-1] if firings else last_fired, next_at=schedule.next_after(now))
    late = [f for f in firings if f < now - MISSED_AFTER]
    if not late:
        _on_time(result, name, policy, firings, running)
        return result
    # the downtime's firings: all missed but the latest, which is the catch-up run if it is not late itself
    catch_up_at = firings[-1] if firings[-1] >= now - MISSED_AFTER else now
    missed = [f for f in firings if f != catch_up_at][-KEEP_MISSED:]
    missed_total = total - (1 if catch_up_at in firings else 0)
    result.runs = [NewRun(f, "schedule", "missed", message="no server ran the crons at this time") for f in missed]
    counted = f"more than {COUNT_CAP - 1}" if total >= COUNT_CAP else str(missed_total)
    note = f"catch-up run for {counted} missed firing(s)"
    if missed_total > len(missed):
        note += f" (the last {len(missed)} are in the history)"
    _start(result, name, policy, NewRun(catch_up_at, "catch-up", "running", message=note), running)
    return result


def _on_time(result: Plan, name: str, policy: Concurrency, firings: list[float], running: int) -> None:
    for i, at in enumerate(firings):
        if policy == "replace" and i < len(firings) - 1:  # the next firing of this very pass replaces it
            result.runs.append(NewRun(at, "schedule", "replaced", message="replaced by the next firing before it started"))
            continue
        _start(result, name, policy, NewRun(at, "schedule", "running"), running + len(result.launch))


def _start(result: Plan, name: str, policy: Concurrency, run: NewRun, running: int) -> None:
    """Add RUN, started as POLICY decides with RUNNING runs open."""
    action = decide(policy, running)
    if action == "skip":
        result.runs.append(NewRun(run.scheduled_at, run.trigger, "skipped",
                                  message="skipped: the previous run was still running (concurrency forbid)"))
        return
    result.replace_open = result.replace_open or action == "replace"
    result.launch.append(len(result.runs))
    result.runs.append(NewRun(run.scheduled_at, run.trigger, "running", container_name(name, run.scheduled_at),
                              run.message))


def decide(policy: Concurrency, running: int) -> str:
    """What a firing does with RUNNING runs still open: run (beside them), skip, or replace (stop them first)."""
    if not running or policy == "allow":
        return "run"
    return "skip" if policy == "forbid" else "replace"
