"""Per-tenant quotas end to end through the real server: `admin quota set`, `seabox quota`, /v1/quota, the 403.

The suite's server raises the operator's defaults (tests/fixtures/server.py SUITE_QUOTAS); each test
here lowers its own tenant's quotas as an operator would.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.docker_fixtures import native, ok, pulled_tenant
from tests.fixtures.server import SEABOX, Server

SLEEP = ["sleep", "300"]


@pytest.fixture
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    """A tenant of its own with busybox pulled; its containers, volumes and images go afterwards."""
    with pulled_tenant(server, "quota", busybox_image) as name:
        yield name


@pytest.fixture
def sb(server: Server, tenant: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    return lambda *args, **kw: server.cli(*args, tenant=tenant, **kw)


def admin_quota(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEABOX, "admin", "quota", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)


def quota_rows(sb: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, list[str]]:
    """`seabox quota` as KEY -> [USED, LIMIT (and its note)]."""
    header, *rows = ok(sb("quota")).splitlines()
    assert header.split() == ["QUOTA", "USED", "LIMIT", "COUNTS"]
    return {cells[0]: cells[1:3] for cells in (re.split(r"\s{3,}", row.strip()) for row in rows)}


def test_past_its_containers_quota_a_create_gets_a_403_naming_it_and_makes_nothing(
    server: Server, tenant: str, sb: Callable[..., Any], busybox_image: str
) -> None:
    ok(admin_quota(server, "set", tenant, "containers=2"))
    ok(sb("create", "--name", "one", busybox_image, *SLEEP))
    ok(sb("run", "-d", "--name", "two", busybox_image, *SLEEP))
    r = sb("create", "--name", "three", busybox_image, *SLEEP)
    assert r.returncode == 1 and "containers quota of 2 reached: 2 in use" in r.stderr, r.stderr
    with native(server, tenant) as api:
        resp = api.post("/v1/containers", json={"image": busybox_image, "cmd": SLEEP, "name": "four"})
        assert resp.status_code == 403, resp.text
        body = resp.json()
        assert (body["field"], body["quota"], body["limit"], body["used"]) == ("containers", "containers", 2, 2)
        assert sorted(c["name"] for c in api.get("/v1/containers", params={"all": "true"}).json()) == ["one", "two"]
        assert {q["key"]: (q["used"], q["limit"], q["default"]) for q in api.get("/v1/quota").json()}["containers"] \
            == (2, 2, False)
    rows = quota_rows(sb)
    assert rows["containers"] == ["2", "2 (set for you)"] and rows["fips"] == ["0", "2"]
    assert rows["images"] == ["1", "1000"]  # the suite's default for every tenant
    ok(sb("rm", "-f", "one"))
    ok(sb("create", "--name", "three", busybox_image, *SLEEP))  # room again


def test_creates_at_once_never_pass_the_quota(server: Server, tenant: str, sb: Callable[..., Any],
                                              busybox_image: str) -> None:
    ok(admin_quota(server, "set", tenant, "containers=3"))
    results: list[subprocess.CompletedProcess[str]] = []
    go = threading.Barrier(8)

    def create(i: int) -> None:
        go.wait()
        results.append(sb("create", "--name", f"c{i}", "-v", f"data{i}:/data", busybox_image, *SLEEP))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    made = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(made) == 3 and len(refused) == 5, [r.stderr for r in results]
    assert all("containers quota of 3 reached: 3 in use" in r.stderr for r in refused), [r.stderr for r in refused]
    assert len(ok(sb("ps", "-a", "-q")).split()) == 3
    assert quota_rows(sb)["containers"] == ["3", "3 (set for you)"]
    # a refused create leaves no volume behind, even one `-v` made before the last slot was taken
    names = {json.loads(ok(sb("inspect", r.stdout.strip())))[0]["name"] for r in made}
    assert set(ok(sb("volume", "ls", "-q")).split()) == {"data" + n[1:] for n in names}


def test_the_operator_sets_shows_and_resets_quotas_and_bad_input_changes_nothing(
    server: Server, tenant: str, sb: Callable[..., Any]
) -> None:
    ok(admin_quota(server, "set", tenant, "volumes=1", "fips=5"))
    for bad, says in ((["volumes=-1"], "quota volumes: -1 is negative"), (["volumes=lots"], "not a whole number"),
                      (["volume=3"], "unknown quota 'volume'"), (["fips=1", "gpus=2"], "unknown quota 'gpus'")):
        r = admin_quota(server, "set", tenant, *bad)
        assert r.returncode == 1 and says in r.stdout + r.stderr, (bad, r.stdout, r.stderr)
    shown = ok(admin_quota(server, "show", tenant))
    assert re.search(r"^\s*volumes\s+0\s+1\s+for this tenant\s*$", shown, re.M), shown
    assert re.search(r"^\s*fips\s+0\s+5\s+for this tenant\s*$", shown, re.M), shown
    ok(sb("volume", "create", "data"))
    r = sb("volume", "create", "more")
    assert r.returncode == 1 and "volumes quota of 1 reached: 1 in use" in r.stderr, r.stderr
    assert ok(sb("volume", "ls", "-q")).split() == ["data"]
    ok(admin_quota(server, "set", tenant, "volumes=default", "fips=default"))
    assert quota_rows(sb)["volumes"] == ["1", "1000"]
    ok(sb("volume", "create", "more"))
