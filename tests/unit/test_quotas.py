"""Per-tenant quotas on real SQLite and PostgreSQL: defaults, overrides, bad input, the 403, requests at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from seabox.config import QuotasConfig, load_config
from seabox.errors import InvalidArgument, QuotaExceeded, SeaboxError
from seabox.model.quota import QUOTA_KEYS, Quota, parse_quota_values
from seabox.store.db import open_engine
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store
from tests.unit.test_cli import cli
from tests.unit.test_store import spec

HYPER_SH = {"containers": 10, "function_containers": 10, "fips": 2, "services": 5, "volumes": 40,
            "security_groups": 100, "images": 20, "crons": 20, "functions": 100}


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(open_engine(db_url))


def _container(store: Store, tenant_id: str, n: int, quota: Quota) -> None:
    store.insert_container(tenant_id, f"{tenant_id}{n:032x}"[:64].ljust(64, "0"), f"c{n}", "local",
                           f"10.208.1.{n + 2}", spec(), quota=quota)


def test_the_defaults_are_hyper_sh_s_for_every_key(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)  # no config.toml: what an operator gets out of the box
    assert cfg.quotas.defaults() == HYPER_SH and list(QUOTA_KEYS) == list(HYPER_SH)
    (tmp_path / "config.toml").write_text("[quotas]\ncontainers = 3\n")
    assert load_config(tmp_path).quotas.quota("containers") == Quota("containers", 3)
    (tmp_path / "config.toml").write_text("[quotas]\ncontainer = 3\n")  # a typo is refused, not ignored
    with pytest.raises(Exception, match="container"):
        load_config(tmp_path)


def test_an_override_applies_to_its_tenant_only_and_the_403_names_quota_limit_and_use(store: Store) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    quotas, default = QuotaStore(store.engine), Quota("containers", 10)
    quotas.set(a.id, {"containers": 2})
    _container(store, a.id, 1, default)
    _container(store, a.id, 2, default)
    with pytest.raises(QuotaExceeded) as err:
        _container(store, a.id, 3, default)
    assert err.value.status == 403 and err.value.field == "containers"
    assert err.value.message.startswith("containers quota of 2 reached: 2 in use; remove one (`seabox rm`)")
    assert err.value.to_json() | {"message": ""} == {"message": "", "field": "containers", "quota": "containers",
                                                      "limit": 2, "used": 2}
    assert sorted(c.name for c in store.list_containers(a.id)) == ["c1", "c2"]  # the refused one made nothing
    for n in range(1, 4):
        _container(store, b.id, n, default)  # b has the default, 10
    use = {q.key: q for q in quotas.usage(a.id, QuotasConfig().defaults())}
    assert (use["containers"].limit, use["containers"].used, use["containers"].default) == (2, 2, False)
    assert (use["fips"].limit, use["fips"].used, use["fips"].default) == (2, 0, True)
    quotas.set(a.id, {"containers": None})  # back to the default
    _container(store, a.id, 3, default)


def test_function_containers_count_apart_from_containers(store: Store) -> None:
    a = store.create_tenant("a")
    _container(store, a.id, 1, Quota("function_containers", 1))
    _container(store, a.id, 2, Quota("containers", 1))  # the function's container is not one of these
    with pytest.raises(QuotaExceeded, match="function_containers quota of 1 reached: 1 in use"):
        _container(store, a.id, 3, Quota("function_containers", 1))


def test_an_image_counts_once_whatever_names_it_has(store: Store) -> None:
    a = store.create_tenant("a")
    one, two, three = ("sha256:" + d * 64 for d in "123")
    images = Quota("images", 2)
    store.add_image_ref(a.id, "docker.io/library/x:1", one, quota=images)
    store.add_image_ref(a.id, "docker.io/library/x@sha256:" + "9" * 64, one, quota=images)  # its digest name
    store.add_image_ref(a.id, "docker.io/library/y:1", two, quota=images)
    store.add_image_ref(a.id, "docker.io/library/y:latest", two, quota=images)
    with pytest.raises(QuotaExceeded, match="images quota of 2 reached: 2 in use"):
        store.add_image_ref(a.id, "docker.io/library/z:1", three, quota=images)
    assert store.image_ref(a.id, "docker.io/library/z:1") is None
    store.add_image_ref(a.id, "docker.io/library/y:1", one, quota=images)  # a name moved to an image it has


@pytest.mark.parametrize("value, says", [("-1", "is negative"), ("ten", "not a whole number"), ("1.5", "not a whole"),
                                         ("", "not a whole"), (str(1 << 31), "over the largest")])
def test_bad_numbers_are_refused_naming_the_quota(value: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        parse_quota_values({"fips": "3", "containers": value})
    assert err.value.field == "containers"


def test_an_unknown_key_is_refused_naming_it(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="unknown quota 'container'") as err:
        parse_quota_values({"container": "3"})
    assert err.value.field == "container"
    a = store.create_tenant("a")
    with pytest.raises(InvalidArgument):
        QuotaStore(store.engine).set(a.id, {"containers": 3, "nope": 1})
    assert all(q.default for q in QuotaStore(store.engine).usage(a.id, QuotasConfig().defaults()))
    assert parse_quota_values({"fips": " 4 ", "images": "default"}) == {"fips": 4, "images": None}


def test_admin_quota_set_changes_all_or_nothing(tmp_path: Path) -> None:
    store = Store(open_engine(load_config(tmp_path).db_url))
    tenant = store.create_tenant("acme")
    for bad, says in ((["fips=3", "containers=-2"], "containers: -2 is negative"),
                      (["fips=3", "gpus=1"], "unknown quota 'gpus'"), (["fips"], "'fips' is not KEY=N")):
        result = cli("admin", "quota", "set", "acme", *bad, "--data-dir", str(tmp_path))
        assert result.exit_code == 1 and says in result.output, result.output
    assert all(q.default for q in QuotaStore(store.engine).usage(tenant.id, QuotasConfig().defaults()))
    result = cli("admin", "quota", "set", "acme", "fips=3", "containers=0", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    shown = cli("admin", "quota", "show", "acme", "--data-dir", str(tmp_path)).output
    assert any(line.split()[:4] == ["fips", "0", "3", "for"] for line in shown.splitlines()), shown
    assert any(line.split()[:4] == ["images", "0", "20", "default"] for line in shown.splitlines()), shown
    with pytest.raises(QuotaExceeded, match="containers quota of 0 reached"):
        _container(store, tenant.id, 1, Quota("containers", 10))
    missing = cli("admin", "quota", "show", "nobody", "--data-dir", str(tmp_path))
    assert missing.exit_code == 1 and "no such tenant: nobody" in missing.output


def test_creates_at_once_on_two_servers_never_pass_the_quota(store: Store, db_url: str) -> None:
    tenant = store.create_tenant("t")
    QuotaStore(store.engine).set(tenant.id, {"containers": 3, "volumes": 2})
    engines = [open_engine(db_url) for _ in range(2)]  # two "servers" on one database
    made: list[str] = []
    refused: list[SeaboxError] = []
    go = threading.Barrier(16)

    def create(i: int) -> None:
        other = Store(engines[i % 2])
        go.wait()
        try:
            if i % 2:
                _container(other, tenant.id, i, Quota("containers", 10))
            else:
                other.create_volume(tenant.id, f"v{i}", 1 << 20, {}, "local", quota=Quota("volumes", 40))
            made.append(str(i))
        except QuotaExceeded as exc:
            refused.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert len(store.list_containers(tenant.id)) == 3 and len(store.list_volumes(tenant.id)) == 2
        assert len(made) == 5 and len(refused) == 11
        assert {e.field for e in refused} == {"containers", "volumes"}
    finally:
        for engine in engines:
            engine.dispose()
