"""Event retention end to end: a server with a short retention prunes old events and keeps recent ones."""

from __future__ import annotations

import json
import time

from tests.e2e.docker_fixtures import native
from tests.fixtures.server import own_server


def test_events_older_than_the_retention_are_pruned_by_the_server(registry: str) -> None:
    with own_server(registry, "evt", '[events]\nretention = "2s"\nprune_interval = 0.5\n') as srv, \
            native(srv, "evt") as client:
        assert client.post("/v1/volumes", json={"name": "old"}).status_code == 201
        names = [e["resource_name"] for e in map(json.loads, client.get("/v1/events").text.splitlines())]
        assert names == ["old"]
        time.sleep(3)
        assert client.post("/v1/volumes", json={"name": "recent"}).status_code == 201
        names = [e["resource_name"] for e in map(json.loads, client.get("/v1/events").text.splitlines())]
        assert names == ["recent"]
