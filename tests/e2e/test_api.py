"""The native API end to end against a real server: auth, containers, errors, isolation, volumes, events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx

from tests.fixtures.server import Server

Api = Callable[[str], httpx.Client]


def pull(client: httpx.Client, ref: str) -> dict:
    lines = [json.loads(line) for line in client.post("/v1/images/pull", json={"image": ref}).text.splitlines()]
    assert "image" in lines[-1], lines[-1]
    return lines[-1]["image"]


def run(client: httpx.Client, image: str, cmd: list[str], **extra: object) -> dict:
    r = client.post("/v1/containers", params={"start": "true"}, json={"image": image, "cmd": cmd, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def wait(client: httpx.Client, cid: str) -> int:
    r = client.post(f"/v1/containers/{cid}/wait")
    assert r.status_code == 200, r.text
    return int(r.json()["exit_code"])


def logs(client: httpx.Client, cid: str, **params: str) -> list[dict]:
    r = client.get(f"/v1/containers/{cid}/logs", params=params)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def test_requests_without_or_with_a_wrong_key_get_401(server: Server) -> None:
    assert httpx.get(server.url + "/v1/containers").status_code == 401
    r = httpx.get(server.url + "/v1/containers", headers={"X-Api-Key": "sbx_wrong"})
    assert r.status_code == 401 and "invalid API key" in r.json()["message"]
    r = httpx.get(server.url + "/v1/containers", headers={"Authorization": f"Bearer {server.tenant('alice')}"})
    assert r.status_code == 200


def test_run_logs_exit_code_and_events(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    c = run(alice, busybox_image, ["sh", "-c", "echo out; echo err >&2; exit 3"], size="s1")
    assert wait(alice, c["id"]) == 3
    entries = logs(alice, c["id"])
    assert [(e["stream"], e["data"]) for e in entries] == [("stdout", "out\n"), ("stderr", "err\n")]
    got = alice.get(f"/v1/containers/{c['name']}").json()
    assert got["status"]["state"] == "exited" and got["status"]["exit_code"] == 3
    actions = [
        e["action"] for e in map(json.loads, alice.get("/v1/events").text.splitlines()) if e["resource_id"] == c["id"]
    ]
    assert actions == ["create", "start", "die"]


def test_stop_start_restart_kill_and_remove(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    c = run(alice, busybox_image, ["sleep", "300"], name=f"sleeper-{uuid.uuid4().hex[:6]}")
    prefix = c["id"][:10]
    assert alice.get(f"/v1/containers/{prefix}").json()["status"]["state"] == "running"
    t0 = time.monotonic()
    stopped = alice.post(f"/v1/containers/{prefix}/stop", params={"t": "1"}).json()
    assert stopped["status"]["state"] == "exited" and time.monotonic() - t0 < 10
    assert alice.post(f"/v1/containers/{c['name']}/start").json()["status"]["state"] == "running"
    assert alice.delete(f"/v1/containers/{c['name']}").status_code == 409  # running: needs force
    r = alice.post(f"/v1/containers/{c['name']}/kill", params={"signal": "KILL"})
    assert r.status_code == 200
    assert wait(alice, c["id"]) == 137
    assert alice.delete(f"/v1/containers/{c['name']}").status_code == 204
    assert alice.get(f"/v1/containers/{c['name']}").status_code == 404


def test_exec_returns_output_and_exit_code(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    c = run(alice, busybox_image, ["sleep", "300"], env=["GREETING=hello"])
    r = alice.post(f"/v1/containers/{c['id']}/exec", json={"cmd": ["sh", "-c", "echo $GREETING; exit 7"]})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert "".join(x.get("data", "") for x in lines) == "hello\n"
    assert lines[-1] == {"exit_code": 7}


def test_bad_input_is_a_4xx_naming_the_problem_and_creates_nothing(api: Api, busybox_image: str) -> None:
    alice = api("alice")
    pull(alice, busybox_image)
    before = alice.get("/v1/containers", params={"all": "true"}).json()
    cases = [
        ({"image": busybox_image, "size": "xxl"}, 400, "size"),
        ({"image": "Bad Ref!!"}, 400, "invalid reference"),
        ({"image": busybox_image, "env": ["=NOKEY"]}, 400, "KEY=VALUE"),
        ({"image": busybox_image, "volumes": ["/etc:/host"]}, 400, "host paths"),
        ({"image": busybox_image, "restart": "sometimes"}, 400, "restart"),
        ({"image": busybox_image, "bogus": 1}, 400, "bogus"),
        ({"image": "127.0.0.1:1/never/pulled:1"}, 404, "no such image"),
        # the labels that mark a service's, cron's or function's containers are the cloud's to set
        ({"image": busybox_image, "labels": {"seabox.service": "web"}}, 400, "labels"),
    ]
    for req, status, text in cases:
        r = alice.post("/v1/containers", json=req)
        assert r.status_code == status, (req, r.text)
        assert text in r.json()["message"], (req, r.json())
    r = alice.post("/containers/create", json={"Image": busybox_image, "Labels": {"Seabox.Function": "f"}})
    assert r.status_code == 400 and "labels" in r.json()["message"], r.text
    r = alice.post("/v1/containers", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    name = f"dup-{uuid.uuid4().hex[:6]}"
    assert alice.post("/v1/containers", json={"image": busybox_image, "name": name, "cmd": ["true"]}).status_code == 201
    r = alice.post("/v1/containers", json={"image": busybox_image, "name": name, "cmd": ["true"]})
    assert r.status_code == 409 and name in r.json()["message"]
    after = alice.get("/v1/containers", params={"all": "true"}).json()
    assert len(after) == len(before) + 1
    for exec_req in ({"cmd": ["true"], "height": 30, "width": 100}, {"cmd": ["true"], "tty": True, "width": 100}):
        r = alice.post(f"/v1/containers/{name}/exec", json=exec_req)
        assert r.status_code == 400 and "height" in r.json()["message"], r.text


def test_tenants_do_not_see_each_other(api_each_class: Api, busybox_image: str) -> None:
    alice, bob = api_each_class("alice"), api_each_class("bob")
    pull(alice, busybox_image)
    c = run(alice, busybox_image, ["sleep", "300"])
    assert bob.get(f"/v1/containers/{c['id']}").status_code == 404
    assert bob.post(f"/v1/containers/{c['id']}/stop").status_code == 404
    assert bob.delete(f"/v1/containers/{c['id']}", params={"force": "true"}).status_code == 404
    assert all(x["id"] != c["id"] for x in bob.get("/v1/containers", params={"all": "true"}).json())
    # bob has not pulled the image: it does not exist for him
    r = bob.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"]})
    assert r.status_code == 404
    assert all(e["resource_id"] != c["id"] for e in map(json.loads, bob.get("/v1/events").text.splitlines()))


def test_volume_data_outlives_the_container_and_rm_refuses_while_in_use(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    vol = f"data-{uuid.uuid4().hex[:6]}"
    assert alice.post("/v1/volumes", json={"name": vol, "size": "1GiB"}).status_code == 201
    assert alice.post("/v1/volumes", json={"name": vol}).status_code == 409
    w = run(alice, busybox_image, ["sh", "-c", "echo persisted > /data/f"], volumes=[f"{vol}:/data"])
    assert wait(alice, w["id"]) == 0
    r = alice.delete(f"/v1/volumes/{vol}")
    assert r.status_code == 409 and w["name"] in r.json()["message"]
    alice.delete(f"/v1/containers/{w['id']}")
    rd = run(alice, busybox_image, ["cat", "/data/f"], volumes=[f"{vol}:/data:ro"])
    assert wait(alice, rd["id"]) == 0
    assert logs(alice, rd["id"])[0]["data"] == "persisted\n"
    alice.delete(f"/v1/containers/{rd['id']}")
    assert alice.delete(f"/v1/volumes/{vol}").status_code == 204
    assert alice.get(f"/v1/volumes/{vol}").status_code == 404


def test_memory_limit_oom_kills_and_shows_it(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    # s1 = 64 MiB; dd's 100 MiB block cannot fit (one read fills it: quick on gVisor too)
    c = run(alice, busybox_image, ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], size="s1")
    code = wait(alice, c["id"])
    got = alice.get(f"/v1/containers/{c['id']}").json()
    assert got["status"]["oom_killed"] is True, (code, got["status"])
    assert code == 137
