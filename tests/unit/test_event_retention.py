"""Event retention: config parsing of durations and one prune pass of the controller on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seabox.config import EventsConfig, ServerConfig, load_config, parse_duration
from seabox.controllers.event_retention import EventRetention
from seabox.errors import InvalidArgument
from seabox.store.db import open_engine
from seabox.store.repo import Store


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800), ("12h", 43200), ("30m", 1800), ("90s", 90),
                                                ("2w", 1209600), (3600, 3600), ("1.5h", 5400)])
def test_durations_parse_as_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["7 days", "-1", 0, "", True, float("inf")])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_config_toml_sets_retention_and_a_bad_one_names_the_field(tmp_path: Path) -> None:
    assert ServerConfig().events.retention == 7 * 86400
    (tmp_path / "config.toml").write_text('[events]\nretention = "2d"\nmax_count = 50\n')
    cfg = load_config(tmp_path)
    assert (cfg.events.retention, cfg.events.max_count) == (2 * 86400, 50)
    (tmp_path / "config.toml").write_text('[events]\nretention = "forever"\n')
    with pytest.raises((InvalidArgument, ValueError), match="retention"):
        load_config(tmp_path)


def test_a_prune_pass_removes_old_events_and_keeps_recent_ones(db_url: str) -> None:
    store = Store(open_engine(db_url))
    tenant = store.create_tenant("acme")
    now = time.time()
    store.add_event(tenant.id, "container", "create", "old", at=now - 3 * 86400)
    store.add_event(tenant.id, "container", "create", "recent", at=now - 3600)
    pruner = EventRetention(store, EventsConfig(retention="1d"))
    assert pruner.prune_once() == 1
    assert [e.resource_id for e in store.list_events()] == ["recent"]
