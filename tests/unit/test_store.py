"""The store on real SQLite and PostgreSQL databases: tenants and hashed keys, container lookup, uniqueness, events."""

from __future__ import annotations

import pytest

from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.model.container import ContainerSpec, RestartPolicy
from seabox.model.quota import QUOTA_KEYS, Quota
from seabox.store.db import open_engine
from seabox.store.repo import Store, hash_key


ROOMY = {key: Quota(key, 1000) for key in QUOTA_KEYS}  # quotas these tests never reach


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(open_engine(db_url))


def spec() -> ContainerSpec:
    return ContainerSpec(
        image="docker.io/library/busybox:latest", image_id="sha256:" + "a" * 64, args=["sh"], cmd=["sh"],
        entrypoint=None, env=[], labels={}, size="s4", volumes=[], workdir="/", user="", hostname="h",
        restart=RestartPolicy(), tty=False, stdin_open=False, stop_signal="SIGTERM", stop_timeout=10,
        runtime_class="runc",
    )


def test_keys_are_stored_hashed_and_resolve_to_their_tenant(store: Store) -> None:
    acme = store.create_tenant("acme")
    key = store.issue_key(acme.id)
    assert store.tenant_for_key(key) == acme
    assert store.tenant_for_key(key + "x") is None
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select key_hash from api_keys").scalar() == hash_key(key)
        every_column = conn.exec_driver_sql("select * from api_keys").all()
    assert key not in str(every_column)
    with pytest.raises(Conflict):
        store.create_tenant("acme")
    assert store.create_tenant("other").index == acme.index + 1


def test_container_lookup_by_name_id_and_prefix_is_tenant_scoped(store: Store) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    c1 = store.insert_container(a.id, "ab12" + "0" * 60, "web", "local", "10.208.1.2", spec(),
                                quota=ROOMY["containers"])
    store.insert_container(a.id, "ab13" + "0" * 60, "db", "local", "10.208.1.3", spec(), quota=ROOMY["containers"])
    assert store.find_container(a.id, "web").id == c1.id
    assert store.find_container(a.id, c1.id).name == "web"
    assert store.find_container(a.id, "ab12").name == "web"
    with pytest.raises(InvalidArgument):
        store.find_container(a.id, "ab1")
    with pytest.raises(NotFound):
        store.find_container(b.id, "web")
    with pytest.raises(Conflict):
        store.insert_container(a.id, "cc" + "0" * 62, "web", "local", "10.208.1.9", spec(), quota=ROOMY["containers"])
    assert store.used_ips(a.id) == {"10.208.1.2", "10.208.1.3"}
    assert store.used_ips(b.id) == set()


def test_events_filter_by_tenant_time_and_cursor(store: Store) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    e1 = store.add_event(a.id, "container", "create", "x", at=100.0)
    store.add_event(b.id, "container", "create", "y", at=150.0)
    e3 = store.add_event(a.id, "container", "start", "x", at=200.0)
    assert [e.id for e in store.list_events(a.id)] == [e1.id, e3.id]
    assert [e.action for e in store.list_events(a.id, since=150)] == ["start"]
    assert [e.action for e in store.list_events(a.id, until=150)] == ["create"]
    assert [e.id for e in store.list_events(a.id, after_id=e1.id)] == [e3.id]


def test_prune_events_drops_old_ones_and_the_oldest_beyond_the_count(store: Store) -> None:
    acme = store.create_tenant("acme")
    now = 1_000_000.0
    for i, age in enumerate([10 * 86400, 8 * 86400, 3600, 60, 1]):
        store.add_event(acme.id, "container", "create", f"c{i}", at=now - age)
    assert store.prune_events(before=now - 7 * 86400, keep=100) == 2
    assert [e.resource_id for e in store.list_events(acme.id)] == ["c2", "c3", "c4"]
    assert store.prune_events(before=now - 7 * 86400, keep=2) == 1
    assert [e.resource_id for e in store.list_events(acme.id)] == ["c3", "c4"]
    assert store.prune_events(before=now - 7 * 86400, keep=2) == 0


def test_an_image_is_needed_while_a_tenant_names_it_or_a_container_is_made_from_it(store: Store) -> None:
    acme, other = store.create_tenant("acme"), store.create_tenant("other")
    image_id = spec().image_id
    assert not store.image_needed(image_id)
    store.add_image_ref(acme.id, "docker.io/library/busybox:latest", image_id, quota=ROOMY["images"])
    store.add_image_ref(other.id, "docker.io/private/x:1", image_id, quota=ROOMY["images"])
    assert store.image_ref(acme.id, "docker.io/library/busybox:latest") == image_id
    assert store.image_ref(acme.id, "docker.io/private/x:1") is None
    store.remove_image_refs(acme.id, ["docker.io/library/busybox:latest"])
    assert store.image_needed(image_id)
    store.remove_image_refs(other.id, ["docker.io/private/x:1"])
    assert not store.image_needed(image_id)
    store.insert_container(acme.id, "c" * 64, "web", "local", None, spec(), quota=ROOMY["containers"])
    assert store.image_needed(image_id) and not store.image_needed("sha256:" + "b" * 64)


def test_volumes_of_terabytes_and_long_event_names_fit_and_volumes_list_by_name(store: Store) -> None:
    acme = store.create_tenant("acme")
    for name in ("b", "B", "a", "_x"):
        store.create_volume(acme.id, name, 16 << 40, {"k": "v"}, "local", quota=ROOMY["volumes"])
    assert store.get_volume(acme.id, "b").size == 16 << 40
    assert [v.name for v in store.list_volumes(acme.id)] == ["B", "_x", "a", "b"]
    tags = ",".join(f"registry.example/team/image-{i}:v{i}" for i in range(40))  # an archive with many tags
    event = store.add_event(acme.id, "image", "import", "sha256:" + "f" * 64, tags)
    assert store.list_events(acme.id)[-1].resource_name == tags == event.resource_name


def test_an_image_name_moves_to_its_new_image_and_an_ip_clash_is_told_from_a_name_clash(store: Store) -> None:
    acme = store.create_tenant("acme")
    store.add_image_ref(acme.id, "docker.io/library/app:1", "sha256:" + "1" * 64, quota=ROOMY["images"])
    store.add_image_ref(acme.id, "docker.io/library/app:1", "sha256:" + "2" * 64, quota=ROOMY["images"])
    assert store.image_refs(acme.id) == [("docker.io/library/app:1", "sha256:" + "2" * 64)]
    store.insert_container(acme.id, "a" * 64, "web", "local", "10.208.1.2", spec(), quota=ROOMY["containers"])
    with pytest.raises(Conflict, match="address 10.208.1.2"):
        store.insert_container(acme.id, "b" * 64, "db", "local", "10.208.1.2", spec(), quota=ROOMY["containers"])
    with pytest.raises(Conflict, match="name 'web'"):
        store.insert_container(acme.id, "b" * 64, "web", "local", "10.208.1.3", spec(), quota=ROOMY["containers"])
    store.insert_container(acme.id, "b" * 64, "db", "local", "10.208.1.3", spec(), quota=ROOMY["containers"])
    with pytest.raises(Conflict, match="name 'web'"):
        store.rename_container("b" * 64, acme.id, "web")


def test_tenants_created_at_once_by_two_servers_get_distinct_network_indexes(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    one, two = Store(open_engine(db_url)), Store(open_engine(db_url))
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda i: (one, two)[i % 2].create_tenant(f"t{i}"), range(16)))
    assert sorted(t.index for t in created) == list(range(1, 17))
    assert {t.name for t in one.list_tenants()} == {f"t{i}" for i in range(16)}


def test_a_reader_following_event_ids_misses_none_while_two_servers_write(db_url: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    one, two = Store(open_engine(db_url)), Store(open_engine(db_url))
    tenant = one.create_tenant("acme")
    done = threading.Event()
    seen: list[int] = []

    def follow() -> None:  # as an event stream does: everything after the last id it saw
        while True:
            finished = done.is_set()
            seen.extend(e.id for e in one.list_events(tenant.id, after_id=seen[-1] if seen else 0))
            if finished:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda i: (one, two)[i % 2].add_event(tenant.id, "container", "start", f"c{i}").id,
                                range(400)))
    done.set()
    reader.join()
    assert sorted(seen) == sorted(written)


def test_a_nul_character_in_one_tenants_spec_breaks_no_query(store: Store) -> None:
    acme = store.create_tenant("acme")
    odd = spec().model_copy(update={"env": ["A=x\x00y"], "labels": {"k\x00": "v\x00"}})
    store.insert_container(acme.id, "c" * 64, "web", "local", None, odd, quota=ROOMY["containers"])
    store.request_container("c" * 64, "running")  # rewrites the stored spec
    got = store.get_container("c" * 64)
    assert got.spec.env == ["A=x\x00y"] and got.spec.labels == {"k\x00": "v\x00"}
    assert store.image_needed(odd.image_id) and not store.image_needed("sha256:" + "b" * 64)
    store.create_volume(acme.id, "v", 1 << 30, {"l\x00": "\x00"}, "local", quota=ROOMY["volumes"])
    assert store.get_volume(acme.id, "v").labels == {"l\x00": "\x00"}
    assert store.add_event(acme.id, "container", "create", "c", "web", {"a": "\x00"}).attributes == {"a": "\x00"}


def test_a_nul_character_in_a_looked_up_name_is_invalid_on_both_engines(store: Store) -> None:
    acme = store.create_tenant("acme")
    for lookup in (lambda: store.find_container(acme.id, "we\x00b"), lambda: store.get_volume(acme.id, "v\x00"),
                   lambda: store.image_ref(acme.id, "x\x00"), lambda: store.tenant_by_name("a\x00")):
        with pytest.raises(InvalidArgument, match="NUL"):
            lookup()
    assert store.list_tenants() == [acme]
