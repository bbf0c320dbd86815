"""Crash safety: kill -9 of the server leaves containers running; the next start re-adopts them and
finishes what was in flight."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from tests.e2e.test_api import pull, run, wait
from tests.fixtures.server import Server, runc_root

Api = Callable[[str], httpx.Client]


def test_kill_9_keeps_containers_and_restart_readopts_them(
    server: Server, api_each_class: Api, busybox_image: str
) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    long = run(alice, busybox_image, ["sleep", "300"])
    short = run(alice, busybox_image, ["sh", "-c", "sleep 2; exit 5"])
    server.stop(signal.SIGKILL)
    killed_at = time.time()
    try:
        os.kill(long["status"]["pid"], 0)  # still running (ProcessLookupError if not)
        time.sleep(3)  # `short` exits while nobody is watching
    finally:
        server.start()
    restarted_at = time.time()
    got = alice.get(f"/v1/containers/{long['id']}").json()
    assert got["status"]["state"] == "running" and got["status"]["pid"] == long["status"]["pid"]
    got = alice.get(f"/v1/containers/{short['id']}").json()
    assert got["status"]["state"] == "exited" and got["status"]["exit_code"] == 5
    finished = datetime.fromisoformat(got["status"]["finished_at"]).timestamp()
    assert killed_at < finished < restarted_at
    # the re-adopted container is still under control: stopping it is reported as its exit
    r = alice.post(f"/v1/containers/{long['id']}/stop", params={"t": "1"})
    assert r.json()["status"]["state"] == "exited"
    assert wait(alice, long["id"]) in (137, 143)


def test_restart_policy_brings_a_failing_container_back(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    c = run(alice, busybox_image, ["sh", "-c", "exit 1"], restart="on-failure:2")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = alice.get(f"/v1/containers/{c['id']}").json()
        if got["status"]["state"] == "exited" and got["status"]["restart_count"] == 2:
            break
        time.sleep(0.2)
    assert got["status"]["restart_count"] == 2 and got["status"]["state"] == "exited", got["status"]


def _runtime_containers(server: Server) -> set[str]:
    """The ids runc holds under the server's runtime root."""
    out = subprocess.run(["runc", "--root", str(runc_root(server.data_dir)), "list", "-q"], capture_output=True,
                         text=True)
    return set(out.stdout.split())


def test_kill_9_in_the_middle_of_starts_leaves_every_record_converged_and_no_untracked_container(
    server: Server, api: Api, busybox_image: str
) -> None:
    alice = api("alice")
    pull(alice, busybox_image)
    created = [
        alice.post("/v1/containers", json={"image": busybox_image, "cmd": ["sleep", "300"]}).json()["id"]
        for _ in range(12)
    ]

    def start(cid: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            api("alice").post(f"/v1/containers/{cid}/start", timeout=30)

    threads = [threading.Thread(target=start, args=(cid,)) for cid in created]
    for t in threads:
        t.start()
    time.sleep(0.3)  # some starts are done, some are in the runtime, some not begun
    server.stop(signal.SIGKILL)
    for t in threads:
        t.join()
    server.start()
    deadline = time.monotonic() + 60
    while True:
        records = {c["id"]: c for c in alice.get("/v1/containers", params={"all": "true"}).json()}
        pending = [c for c in records.values() if c["spec"]["desired"] == "running" and c["status"]["state"] != "running"
                   and not c["status"]["error"]]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not pending, [(c["name"], c["status"]) for c in pending]
    assert set(created) <= set(records)
    for c in records.values():
        if c["spec"]["desired"] == "running":
            assert c["status"]["state"] == "running" and c["status"]["generation"] == c["spec"]["generation"]
    assert _runtime_containers(server) <= set(records)
    for cid in created:
        assert alice.delete(f"/v1/containers/{cid}", params={"force": "true"}).status_code == 204
    assert _runtime_containers(server) & set(created) == set()
