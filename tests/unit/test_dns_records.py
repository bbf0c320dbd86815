"""The records each node's tenant resolvers get: NodeHub's batch hosts, for every container of each tenant
the node holds (wherever it runs), and a new batch on a rename or remove."""

from __future__ import annotations

from pathlib import Path

from seabox.model.node import NodeCapacity
from seabox.services.events import EventBus
from seabox.services.nodes import NodeHub
from seabox.store.db import open_engine
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

MiB = 1 << 20


def test_a_nodes_batch_names_every_container_of_its_tenants_and_follows_renames_and_removes(tmp_path: Path) -> None:
    store = Store(open_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    nodes = NodeStore(store.engine)
    for name in ("n1", "n2"):
        nodes.ensure_local(name, "local", NodeCapacity(name, 1024 * MiB, 2))
    alice, bob, carol = (store.create_tenant(n) for n in ("alice", "bob", "carol"))
    store.insert_container(alice.id, "a" * 64, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    db = store.insert_container(alice.id, "b" * 64, "db", "n2", "10.208.1.3", spec(),
                                quota=ROOMY["containers"])  # on the other node
    store.insert_container(bob.id, "c" * 64, "web", "n1", "10.208.2.2", spec(), quota=ROOMY["containers"])
    store.insert_container(carol.id, "d" * 64, "api", "n2", "10.208.3.2", spec(),
                           quota=ROOMY["containers"])  # no container on n1
    hub = NodeHub(store, nodes, EventBus(store), containers=None)  # type: ignore[arg-type]
    batch = hub.batch("n1")
    assert batch.hosts == {
        alice.index: [("10.208.1.2", ["web", "a" * 12, "web.alice.seabox.internal"]),
                      ("10.208.1.3", ["db", "b" * 12, "db.alice.seabox.internal"])],
        bob.index: [("10.208.2.2", ["web", "c" * 12, "web.bob.seabox.internal"])],
    }
    store.rename_container(db.id, alice.id, "store")
    renamed = hub.batch("n1")
    assert renamed.etag != batch.etag
    assert renamed.hosts[alice.index][1] == ("10.208.1.3", ["store", "b" * 12, "store.alice.seabox.internal"])
    store.delete_container(db.id)
    removed = hub.batch("n1")
    assert removed.etag != renamed.etag and [ip for ip, _ in removed.hosts[alice.index]] == ["10.208.1.2"]
