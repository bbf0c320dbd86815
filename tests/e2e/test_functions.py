"""Functions end to end through a real server: stdio calls (sync and async), results read once, the limits
(413, 509, 504, concurrency, queue, 429), the public call URL, rm while a call runs, logs, and failed-on-restart."""

from __future__ import annotations

import concurrent.futures
import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.e2e.docker_fixtures import ok, pull, unique
from tests.fixtures.server import SEABOX, Server, own_server

MIB = 1 << 20
# small limits, so that tests reach them: 2 calls of a tenant at once, 1 waiting
CONFIG = "[functions]\ntenant_concurrency = 2\nqueue_size = 1\nprune_interval = 1\ncall_lease = 3\n"
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def fserver(registry: str, busybox_image: str) -> Iterator[Server]:
    with own_server(registry, "func", CONFIG) as srv:
        yield srv


@pytest.fixture
def tenant(fserver: Server, busybox_image: str) -> Iterator[str]:
    name = unique("fn")
    pull(fserver, name, busybox_image)
    yield name
    with client_of(fserver, name) as api:
        for f in api.get("/v1/funcs").json():
            for _ in range(100):
                if api.delete(f"/v1/funcs/{f['spec']['name']}").status_code != 409:
                    break
                time.sleep(0.2)
        for c in api.get("/v1/containers", params={"all": "true"}).json():
            api.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


def client_of(server: Server, tenant: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant(tenant)}, timeout=120)


@pytest.fixture
def api(fserver: Server, tenant: str) -> Iterator[httpx.Client]:
    with client_of(fserver, tenant) as client:
        yield client


@pytest.fixture
def sb(fserver: Server, tenant: str) -> Cli:
    return lambda *args, **kw: fserver.cli(*args, tenant=tenant, **kw)


def make(api: httpx.Client, name: str, image: str, cmd: list[str], **spec: object) -> dict[str, object]:
    r = api.post("/v1/funcs", json={"name": name, "image": image, "cmd": cmd, "size": "s1", **spec})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_sync_and_async_calls_through_the_cli(sb: Cli, busybox_image: str) -> None:
    url = ok(sb("func", "create", "echo", busybox_image, "cat")).strip()
    assert "/call/echo/" in url
    assert ok(sb("func", "call", "--sync", "echo", "--data", "-", input="hello stdin")) == "hello stdin"
    call_id = ok(sb("func", "call", "echo", "--data", "-", input="later")).strip()
    assert ok(sb("func", "get", "--wait", call_id)) == "later"
    again = sb("func", "get", call_id)  # a result is answered once
    assert again.returncode == 1 and "no such call" in again.stderr
    assert [row.split()[0] for row in ok(sb("func", "ls")).splitlines()[1:]] == ["echo"]
    [shown] = json.loads(ok(sb("func", "inspect", "echo")))
    assert shown["call_url"] == url
    status = ok(sb("func", "status", "echo")).splitlines()
    assert status[0].split() == ["NAME", "MODE", "GENERATION", "RUNNING", "QUEUED", "WARM"]
    assert status[1].split() == ["echo", "stdio", "1", "0", "0", "0"]
    new_url = ok(sb("func", "update", "--refresh", "--timeout", "60", "echo")).strip()
    assert new_url != url and "/call/echo/" in new_url
    [shown] = json.loads(ok(sb("func", "inspect", "echo")))
    assert (shown["generation"], shown["spec"]["timeout"]) == (2, 60)
    failing = sb("func", "call", "--sync", "nothing-here")
    assert failing.returncode == 1 and "no such function" in failing.stderr


def test_headers_become_environment_and_a_non_zero_exit_is_the_functions_500(
        api: httpx.Client, busybox_image: str) -> None:
    make(api, "env", busybox_image, ["sh", "-c", "echo $Http_Method $Http_X_Foo $Http_Query; env | grep -c Api_Key; exit 3"])
    r = api.post("/v1/funcs/env/call", params={"sync": "1", "a": "b"}, headers={"X-Foo": "bar"})
    assert r.status_code == 500
    assert r.headers["X-Seabox-Exit-Code"] == "3"
    assert r.text == "POST bar a=b\n0\n"  # the caller's API key never reaches the function


def test_limits_413_509_504(api: httpx.Client, busybox_image: str) -> None:
    make(api, "cat", busybox_image, ["cat"])
    assert api.post("/v1/funcs/cat/call", params={"sync": "1"}, content=b"x" * MIB).content == b"x" * MIB
    r = api.post("/v1/funcs/cat/call", params={"sync": "1"}, content=b"x" * (MIB + 1))
    assert r.status_code == 413, r.text
    make(api, "flood", busybox_image, ["sh", "-c", "head -c 2000000 /dev/zero"])
    r = api.post("/v1/funcs/flood/call", params={"sync": "1"})
    assert r.status_code == 509, r.text
    make(api, "slow", busybox_image, ["sleep", "30"], timeout=2)
    t0 = time.monotonic()
    r = api.post("/v1/funcs/slow/call", params={"sync": "1"})
    assert r.status_code == 504 and time.monotonic() - t0 < 10, r.text
    call_id = api.post("/v1/funcs/slow/call").json()["CallId"]
    r = api.get(f"/v1/funcs/calls/{call_id}", params={"wait": "1"})
    assert r.status_code == 504 and r.headers["X-Seabox-Call-Status"] == "timed-out", r.text


def test_tenant_concurrency_queue_and_429(api: httpx.Client, busybox_image: str) -> None:
    make(api, "nap", busybox_image, ["sh", "-c", "sleep 3; echo done"])
    ids = [api.post("/v1/funcs/nap/call").json()["CallId"] for _ in range(3)]  # 2 run, 1 waits
    r = api.post("/v1/funcs/nap/call")
    assert r.status_code == 429 and "Retry-After" in r.headers, r.text
    status = api.get("/v1/funcs/nap/status").json()
    assert (status["running"], status["queued"]) == (2, 1), status
    results = [api.get(f"/v1/funcs/calls/{i}", params={"wait": "1"}) for i in ids]
    assert [r.text for r in results] == ["done\n"] * 3


def test_function_concurrency_holds_calls_in_order(api: httpx.Client, busybox_image: str) -> None:
    make(api, "one", busybox_image, ["sh", "-c", "cat; sleep 1"], concurrency=1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        calls = [pool.submit(api.post, "/v1/funcs/one/call", params={"sync": "1"}, content=str(i).encode())
                 for i in range(2)]
        assert sorted(c.result().text for c in calls) == ["0", "1"]
    assert time.monotonic() - t0 > 2  # one after the other


def test_public_url_right_and_wrong_secret_and_another_tenant(
        fserver: Server, api: httpx.Client, busybox_image: str) -> None:
    fn = make(api, "pub", busybox_image, ["cat"])
    path = str(fn["call_path"])
    with httpx.Client(base_url=fserver.url, timeout=60) as anon:  # no API key
        r = anon.post(path + "/sync", content=b"open")
        assert r.status_code == 200 and r.text == "open", r.text
        call_id = anon.post(path, content=b"async").json()["CallId"]
        assert api.get(f"/v1/funcs/calls/{call_id}", params={"wait": "1"}).text == "async"
        assert anon.post(path[:-1] + ("A" if path[-1] != "A" else "B") + "/sync").status_code == 404
        assert anon.post(path.replace("/pub/", "/other/") + "/sync").status_code == 404
        other = unique("fn-other")
        with client_of(fserver, other) as theirs:  # the other tenant's function of the same name
            pull(fserver, other, busybox_image)
            their_fn = make(theirs, "pub", busybox_image, ["cat"])
            assert anon.post(f"/call/pub/{fn['secret']}/sync", content=b"x").text == "x"
            assert theirs.post(f"/v1/funcs/calls/{call_id}").status_code in (404, 405)
            assert theirs.get(f"/v1/funcs/calls/{call_id}").status_code == 404
            theirs.delete("/v1/funcs/pub")
            assert anon.post(str(their_fn["call_path"]) + "/sync").status_code == 404
        new = api.patch("/v1/funcs/pub", json={"refresh": True}).json()
        assert new["secret"] != fn["secret"]
        assert anon.post(path + "/sync").status_code == 404  # the old secret no longer opens it
        assert anon.post(str(new["call_path"]) + "/sync", content=b"new").text == "new"


def test_rm_refused_while_a_call_runs_and_logs_of_a_call(sb: Cli, api: httpx.Client, busybox_image: str) -> None:
    make(api, "busy", busybox_image, ["sh", "-c", "echo to-stderr >&2; sleep 2; echo out"])
    call_id = api.post("/v1/funcs/busy/call").json()["CallId"]
    deadline = time.monotonic() + 10
    while api.get("/v1/funcs/busy/status").json()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    r = sb("func", "rm", "busy")
    assert r.returncode == 1 and "running" in r.stderr, r.stderr
    assert ok(sb("func", "get", "--wait", call_id)) == "out\n"
    assert ok(sb("func", "logs", "busy", "--call", call_id)) == "to-stderr\nout\n"
    assert f"==> call {call_id} (done, HTTP 200) <==" in ok(sb("func", "logs", "busy"))
    ok(sb("func", "rm", "busy"))
    assert sb("func", "inspect", "busy").returncode == 1


def test_bad_input_changes_nothing(api: httpx.Client) -> None:
    r = api.post("/v1/funcs", json={"name": "ghost", "image": "no-such-image:1", "cmd": ["cat"]})
    assert r.status_code == 404 and "no-such-image" in r.text, r.text
    r = api.post("/v1/funcs", json={"name": "bad", "image": "busybox", "size": "huge"})
    assert r.status_code == 400 and r.json()["field"] == "size"
    r = api.post("/v1/funcs", json={"name": "bad", "image": "busybox", "timeout": 0})
    assert r.status_code == 400 and r.json()["field"] == "timeout"
    assert api.get("/v1/funcs").json() == []
    assert api.post("/v1/funcs/nothing/call").status_code == 404


def test_a_call_running_when_the_server_stopped_is_marked_failed(registry: str, busybox_image: str) -> None:
    with own_server(registry, "funcrs", CONFIG) as srv:
        pull(srv, "restart", busybox_image)
        with client_of(srv, "restart") as api:
            make(api, "long", busybox_image, ["sleep", "60"])
            for sig, says in ((signal.SIGTERM, "the server is stopping"), (signal.SIGKILL, "server running this call stopped")):
                call_id = api.post("/v1/funcs/long/call").json()["CallId"]
                time.sleep(1)
                srv.stop(sig)  # SIGKILL: nothing recorded the end; the call's lease runs out
                srv.start()
                r = api.get(f"/v1/funcs/calls/{call_id}", params={"wait": "1"}, timeout=30)
                assert r.headers["X-Seabox-Call-Status"] == "failed" and says in r.json()["message"], r.text
            deadline = time.monotonic() + 20  # the prune pass removes the containers those calls left
            while api.get("/v1/containers", params={"all": "true"}).json() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert api.get("/v1/containers", params={"all": "true"}).json() == []


def test_logs_follow_prints_calls_as_they_end(fserver: Server, tenant: str, api: httpx.Client,
                                              busybox_image: str) -> None:
    make(api, "tick", busybox_image, ["sh", "-c", "cat; echo"])
    first = api.post("/v1/funcs/tick/call", params={"sync": "1"}, content=b"one").headers["X-Seabox-Call-Id"]
    proc = subprocess.Popen([*SEABOX, "func", "logs", "-f", "tick"], env=fserver.env(tenant), stdout=subprocess.PIPE,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        assert lines.get(timeout=30) == f"==> call {first} (done, HTTP 200) <==\n"
        assert lines.get(timeout=5) == "one\n"
        second = api.post("/v1/funcs/tick/call", params={"sync": "1"}, content=b"two").headers["X-Seabox-Call-Id"]
        assert lines.get(timeout=10) == f"==> call {second} (done, HTTP 200) <==\n"
        assert lines.get(timeout=5) == "two\n"
    finally:
        proc.kill()
        proc.wait()
