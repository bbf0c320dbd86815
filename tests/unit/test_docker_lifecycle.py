"""Docker prune filters and update bodies as Seabox reads them, and the node's pause as desired state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seabox.api.docker.lifecycle import update_request
from seabox.api.docker.prune import parse_until, prune_filter
from seabox.errors import InvalidArgument
from seabox.model.humanize import status_words


def test_until_takes_unix_times_rfc3339_and_durations() -> None:
    assert parse_until("1700000000.5") == 1700000000.5
    assert parse_until("2024-01-02T03:04:05Z") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert parse_until("1h30m", now=10_000.0) == 10_000.0 - 5400
    assert parse_until("250ms", now=1.0) == pytest.approx(0.75)
    with pytest.raises(InvalidArgument) as err:
        parse_until("yesterday")
    assert err.value.field == "filters"


def test_prune_filter_selects_by_age_and_labels() -> None:
    chosen = prune_filter({"until": ["100"], "label": ["a=1", "b"], "label!": ["keep"]}, {"until", "label", "label!"})
    assert chosen.selects(50, {"a": "1", "b": "x"})
    assert not chosen.selects(150, {"a": "1", "b": "x"})  # too new
    assert not chosen.selects(50, {"a": "2", "b": "x"})
    assert not chosen.selects(50, {"a": "1"})
    assert not chosen.selects(50, {"a": "1", "b": "x", "keep": ""})
    with pytest.raises(InvalidArgument, match="dangling"):
        prune_filter({"dangling": ["true"]}, {"label"})


class _Spec:
    size = "s4"


class _Container:
    spec = _Spec()


def test_update_maps_memory_to_a_size_and_refuses_what_it_cannot_change() -> None:
    cli_body = {"Memory": 1 << 30, "MemorySwap": 0, "CpuShares": 0, "CpusetCpus": "", "Devices": None,
                "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}
    size, restart = update_request(cli_body, _Container())  # type: ignore[arg-type]
    assert size is not None and restart is None
    _, restart = update_request({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}, _Container())  # type: ignore[arg-type]
    assert restart is not None and str(restart) == "on-failure:2"
    for body, field in (({"CpusetCpus": "0"}, "CpusetCpus"), ({"PidsLimit": 5}, "PidsLimit"),
                        ({"RestartPolicy": {"Name": "sometimes"}}, "RestartPolicy"),
                        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}, "RestartPolicy"),
                        ({"MemorySwap": 5}, "MemorySwap")):
        with pytest.raises(InvalidArgument) as err:
            update_request(body, _Container())  # type: ignore[arg-type]
        assert err.value.field == field, body


def test_a_paused_container_reads_as_docker_ps_words_it() -> None:
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    assert status_words("paused", 0, datetime(2026, 1, 1, tzinfo=UTC), None, now) == "Up 10 minutes (Paused)"
