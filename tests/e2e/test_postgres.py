"""`seabox server` on PostgreSQL: tenants, containers and their state live in the database across restarts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import insert

from seabox.store import tables
from seabox.store.db import open_engine
from seabox.store.repo import Store
from tests.e2e.test_api import pull, run, wait
from tests.fixtures.server import Server, own_server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runc, netns, nftables"),
]
# Tenant bridges are named by tenant index on every server for now: this server's tenant takes an
# index the session's other server never reaches, so the two never share a bridge.
FAR_INDEX = 3000


@pytest.fixture
def pg_server(registry: str, busybox_image: str, pg_database: str) -> Iterator[Server]:
    engine = open_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(insert(tables.tenants).values(id="t" + secrets.token_hex(8), name="placeholder",
                                                   idx=FAR_INDEX, created_at=0.0))
    engine.dispose()
    with own_server(registry, "pg", database_url=pg_database) as srv:
        yield srv


def test_a_server_on_postgresql_keeps_its_containers_across_a_restart(
    pg_server: Server, pg_database: str, busybox_image: str
) -> None:
    key = pg_server.tenant("pg-alice")  # `seabox admin` finds the database in config.toml
    with httpx.Client(base_url=pg_server.url, headers={"X-Api-Key": key}, timeout=60) as alice:
        pull(alice, busybox_image)
        c = run(alice, busybox_image, ["sleep", "300"], name="kept")
        try:
            assert c["status"]["state"] == "running", c
            assert not (pg_server.data_dir / "seabox.db").exists()
            assert [x.id for x in Store(open_engine(pg_database)).list_containers()] == [c["id"]]
            # restarted with the URL as a flag instead of in config.toml
            pg_server.stop()
            config = pg_server.data_dir / "config.toml"
            config.write_text("\n".join(line for line in config.read_text().splitlines()
                                        if not line.startswith("database_url")))
            pg_server.args = ["--database-url", pg_database]
            pg_server.start()
            listed = alice.get("/v1/containers").json()
            assert [(x["id"], x["name"], x["status"]["state"]) for x in listed] == [(c["id"], "kept", "running")]
            assert alice.post(f"/v1/containers/{c['id']}/stop", params={"t": "1"}).status_code == 200
            assert wait(alice, c["id"]) in (137, 143)
        finally:
            alice.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        assert alice.get("/v1/containers", params={"all": "true"}).json() == []
