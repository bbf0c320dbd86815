"""Healthchecks: Docker's Healthcheck object and its bounds, the merge with the image's, and how probes are counted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from seabox.errors import InvalidArgument
from seabox.model.healthcheck import LOG_MAX, Health, Healthcheck, ProbeResult
from seabox.model.humanize import status_words
from seabox.node.healthcheck import Checker, folded

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def result(code: int) -> ProbeResult:
    return ProbeResult(start=NOW, end=NOW, exit_code=code, output=str(code))


def test_docker_form_round_trips_and_unset_fields_stay_unset() -> None:
    d = {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 200_000_000, "Timeout": 0, "Retries": 2}
    check = Healthcheck.from_docker(d, "Healthcheck")
    assert check is not None and check.interval == 0.2 and check.timeout is None and check.within == 30.0
    assert check.argv() == ["/bin/sh", "-c", "curl -f localhost"]
    assert check.to_docker() == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 200_000_000, "Retries": 2}


@pytest.mark.parametrize(("d", "field"), [
    ({"Test": ["CMD-SHELL"]}, "Healthcheck.Test"),
    ({"Test": ["SHELL", "true"]}, "Healthcheck.Test"),
    ({"Test": ["NONE", "x"]}, "Healthcheck.Test"),
    ({"Test": ["CMD", "x" * 20000]}, "Healthcheck.Test"),
    ({"Test": ["CMD", "true"], "Interval": 1_000_000}, "Healthcheck.Interval"),
    ({"Test": ["CMD", "true"], "Timeout": -1}, "Healthcheck.Timeout"),
    ({"Test": ["CMD", "true"], "StartPeriod": 10**15}, "Healthcheck.StartPeriod"),
    ({"Test": ["CMD", "true"], "Retries": -1}, "Healthcheck.Retries"),
])
def test_out_of_range_docker_settings_are_refused_naming_the_field(d: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Healthcheck.from_docker(d, "Healthcheck")
    assert caught.value.field == field


def test_native_bounds_are_validated() -> None:
    with pytest.raises(ValidationError):
        Healthcheck(test=["CMD", "true"], interval=0.01)


def test_merge_takes_what_the_request_leaves_unset_from_the_image() -> None:
    image = Healthcheck(test=["CMD", "test", "-e", "/ok"], interval=5, retries=4)
    mine = Healthcheck(interval=1)
    merged = mine.merged(image)
    assert merged.test == ["CMD", "test", "-e", "/ok"] and merged.interval == 1 and merged.retries == 4
    off = Healthcheck(test=["NONE"]).merged(image)
    assert not off.enabled and off.retries == 4


def test_failures_count_toward_retries_except_in_the_start_period() -> None:
    check = Healthcheck(test=["CMD", "false"], retries=2)
    h = folded(Health(), check, result(1), starting=True)
    assert (h.status, h.failing_streak) == ("starting", 0)
    h = folded(h, check, result(1), starting=False)
    assert (h.status, h.failing_streak) == ("starting", 1)
    h = folded(h, check, result(1), starting=False)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    h = folded(h, check, result(0), starting=False)
    assert (h.status, h.failing_streak) == ("healthy", 0)
    h = folded(h, check, result(1), starting=True)  # once healthy, the start period no longer shields it
    assert (h.status, h.failing_streak) == ("healthy", 1)
    for _ in range(10):
        h = folded(h, check, result(0), starting=False)
    assert len(h.log) == LOG_MAX


def test_ps_words_show_the_health() -> None:
    assert status_words("running", 0, NOW, None, NOW, health="starting") == "Up Less than a second (health: starting)"
    assert status_words("running", 0, NOW, None, NOW, health="healthy").endswith("(healthy)")
    assert status_words("exited", 1, NOW, NOW, NOW, health="unhealthy").startswith("Exited (1)")


def test_checker_probes_one_at_a_time_and_reports_each_probe() -> None:
    async def scenario() -> tuple[list[str], int, Health | None, Health | None]:
        probed: list[str] = []
        running = peak = 0

        async def run(cid: str, check: Healthcheck) -> tuple[int, str]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.15)  # longer than the interval: the next probe waits for this one
            running -= 1
            return 0, "ok"

        async def on_probed(cid: str) -> None:
            probed.append(cid)

        checker = Checker(on_probed, run)
        checker.watch("c1", Healthcheck(test=["CMD", "true"], interval=0.1))
        await asyncio.sleep(0.7)
        seen = checker.health("c1")
        checker.forget("c1")
        await checker.close()
        return probed, peak, seen, checker.health("c1")

    probed, peak, seen, after = asyncio.run(scenario())
    assert peak == 1 and 2 <= len(probed) <= 4 and set(probed) == {"c1"}
    assert seen is not None and seen.status == "healthy" and seen.log[-1].output == "ok"
    assert after is None
