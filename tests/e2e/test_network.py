"""Tenant networks end to end: one tenant's containers reach each other by address and name; others cannot."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.e2e.test_api import logs, pull, run, wait

Api = Callable[[str], httpx.Client]
SERVE = ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www"]


def fetch(client: httpx.Client, image: str, target: str) -> tuple[int, str]:
    """(exit code, page body) of an HTTP GET from a new container of the client's tenant.

    busybox nc rather than wget: Debian's runsc (host networking) breaks busybox wget's reads (EAGAIN).
    """
    # not exec'd directly: PID 1 ignores timeout's SIGTERM, so sh stays PID 1 and nc is its child
    get = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {target} 8080; exit $?"
    c = run(client, image, ["sh", "-c", get])
    code = wait(client, c["id"])
    out = "".join(e["data"] for e in logs(client, c["id"]) if e["stream"] == "stdout")
    client.delete(f"/v1/containers/{c['id']}")
    return code, out.rpartition("\r\n\r\n")[2]


def test_same_tenant_reaches_by_address_and_name_other_tenant_cannot(api_each_class: Api, busybox_image: str) -> None:
    alice, bob = api_each_class("alice"), api_each_class("bob")
    pull(alice, busybox_image)
    pull(bob, busybox_image)
    web = run(alice, busybox_image, SERVE, name="web")
    ip = web["status"]["ip"]
    assert ip.startswith("10.")
    assert fetch(alice, busybox_image, ip) == (0, "hello-from-web\n")
    assert fetch(alice, busybox_image, "web") == (0, "hello-from-web\n")
    code, out = fetch(bob, busybox_image, ip)
    assert code != 0 and out == ""
    # bob's own "web" name resolves only within bob's network (he has none)
    code, _ = fetch(bob, busybox_image, "web")
    assert code != 0


def test_addresses_are_distinct_and_inspect_shows_them(api_each_class: Api, busybox_image: str) -> None:
    alice = api_each_class("alice")
    pull(alice, busybox_image)
    a = run(alice, busybox_image, ["sleep", "300"])
    b = run(alice, busybox_image, ["sleep", "300"])
    assert a["status"]["ip"] != b["status"]["ip"]
    r = alice.post(f"/v1/containers/{a['id']}/exec", json={"cmd": ["cat", "/etc/hosts"]})
    hosts = "".join(json.loads(x).get("data", "") for x in r.text.splitlines())
    assert b["name"] in hosts and b["status"]["ip"] in hosts
