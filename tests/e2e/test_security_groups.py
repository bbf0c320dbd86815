"""Security groups end to end against a real server: `seabox sg`, run --sg, update --sg-add/--sg-rm, the
/v1/security-groups API, the docker CLI's sh_hyper_sg_NAME=yes label, tenancy, and bad input changing nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, pull, unique
from tests.fixtures.server import Server
from tests.unit.test_security_groups import WEB

TENANT, OTHER = "sgcp", "sgcp2"
DB = "name: db\nrules:\n  - {direction: ingress, protocol: udp, port_range_min: 53}\n"


def remove_groups(client: httpx.Client) -> None:
    """Remove the tenant's groups: their rules first (a group another's rules name cannot go)."""
    groups = client.get("/v1/security-groups").json()
    for g in groups:
        client.put(f"/v1/security-groups/{g['name']}", json={"name": g["name"]})
    for g in groups:
        assert client.delete(f"/v1/security-groups/{g['name']}").status_code == 204


@pytest.fixture
def sg(server: Server, api: Callable[[str], httpx.Client], busybox_image: str) -> Iterator[Server]:
    """The server; what tenants sgcp and sgcp2 made is removed afterwards (containers, volumes, groups)."""
    pull(server, TENANT, busybox_image)
    with cleaned(server, TENANT, OTHER):
        yield server
        for tenant in (TENANT, OTHER):
            client = api(tenant)
            for c in client.get("/v1/containers", params={"all": "true"}).json():
                client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
            remove_groups(client)


def sb(server: Server, *args: str, tenant: str = TENANT) -> tuple[int, str, str]:
    r = server.cli(*args, tenant=tenant)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def ok(server: Server, *args: str, tenant: str = TENANT) -> str:
    code, out, err = sb(server, *args, tenant=tenant)
    assert code == 0, f"seabox {' '.join(args)} exited {code}: {err}"
    return out


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def names(server: Server, tenant: str = TENANT) -> list[str]:
    return ok(server, "sg", "ls", "-q", tenant=tenant).split()


def groups_of(server: Server, container: str, tenant: str = TENANT) -> list[str]:
    [info] = json.loads(ok(server, "inspect", container, tenant=tenant))
    return list(info["spec"]["security_groups"])


def test_create_ls_inspect_update_and_rm(sg: Server, tmp_path: Path) -> None:
    web = write(tmp_path, "web.yaml", WEB)
    assert ok(sg, "sg", "create", "-f", web).strip() == "web"
    assert ok(sg, "sg", "create", "-f", web, "web2").strip() == "web2"  # NAME instead of the file's
    assert names(sg) == ["web", "web2"]
    table = ok(sg, "sg", "ls")
    assert "RULES" in table and "web servers" in table and " 3 " in table
    # -o yaml is the file form, defaults made explicit; it creates the same group again
    shown = yaml.safe_load(ok(sg, "sg", "inspect", "-o", "yaml", "web"))
    given = yaml.safe_load(WEB)
    given["rules"][1]["port_range_max"] = 5432
    given["rules"][2]["remote_ip_prefix"] = "0.0.0.0/0"
    assert shown == given
    again = write(tmp_path, "again.yaml", ok(sg, "sg", "inspect", "-o", "yaml", "web"))
    assert ok(sg, "sg", "create", "-f", again, "web3").strip() == "web3"
    record = json.loads(ok(sg, "sg", "inspect", "-o", "json", "web"))
    assert (record["name"], record["generation"], record["in_use_by"]) == ("web", 1, [])
    # update replaces every rule; the file's name may differ from NAME, which wins
    assert ok(sg, "sg", "update", "-f", write(tmp_path, "db.yaml", DB), "web").strip() == "web"
    record = json.loads(ok(sg, "sg", "inspect", "web"))
    assert record["generation"] == 2 and record["description"] == ""
    assert record["rules"] == [{"direction": "ingress", "protocol": "udp", "port_range_min": 53,
                                "port_range_max": 53, "remote_ip_prefix": "0.0.0.0/0",
                                "remote_group_name": None}]
    assert ok(sg, "sg", "rm", "web2", "web3").split() == ["web2", "web3"]
    code, _, err = sb(sg, "sg", "rm", "web2")
    assert code == 1 and "no such security group: web2" in err
    code, _, err = sb(sg, "sg", "inspect", "-o", "toml", "web")
    assert code != 0 and "json or yaml" in err


@pytest.mark.parametrize(("text", "words"), [
    (WEB.replace("203.0.113.0/24", "203.0.113.0/33"), "rules[0].remote_ip_prefix"),
    (WEB.replace("port_range_max: 81", "port_range_max: 79"), "rules[0].port_range_max"),
    (WEB.replace("port_range_min: 80", "port_range_min: 0"), "rules[0].port_range_min"),
    (WEB.replace("port_range_max: 81", "port_range_max: 65536"), "rules[0].port_range_max"),
    (WEB.replace("protocol: any", "protocol: gre"), "rules[2].protocol"),
    (WEB.replace("protocol: any", "protocol: icmp\n    port_range_min: 8"), "rules[2].port_range_min"),
    (WEB.replace("direction: egress", "direction: out"), "rules[2].direction"),
    (WEB.replace("remote_group_name: web", "remote_group_name: nope"), "no such security group: nope"),
    (WEB + "  - {direction: egress, protocol: tcp, prot: 1}\n", "rules[3].prot: unknown field"),
    (WEB + "extra: 1\n", "extra: unknown field"),
    ("name: web\nrules: [\n", "malformed YAML"),
    ("a: &x {direction: egress, protocol: any}\nname: web\nrules: [*x]\n", "aliases"),
])
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    sg: Server, tmp_path: Path, text: str, words: str,
) -> None:
    ok(sg, "sg", "create", "-f", write(tmp_path, "db.yaml", DB))
    before = json.loads(ok(sg, "sg", "inspect", "db"))
    bad = write(tmp_path, "bad.yaml", text)
    code, _, err = sb(sg, "sg", "create", "-f", bad)
    assert code == 1 and words in err, err
    code, _, err = sb(sg, "sg", "update", "-f", bad, "db")
    assert code == 1 and words in err, err
    assert names(sg) == ["db"]
    assert json.loads(ok(sg, "sg", "inspect", "db")) == before


def test_the_api_takes_json_and_yaml_and_answers_400_naming_the_field(
    sg: Server, api: Callable[[str], httpx.Client],
) -> None:
    client = api(TENANT)
    r = client.post("/v1/security-groups", json={"name": "j", "rules": [{"direction": "egress", "protocol": "tcp",
                                                                          "port_range_min": 443}]})
    assert r.status_code == 201 and r.json()["rules"][0]["port_range_max"] == 443
    r = client.post("/v1/security-groups", content=DB, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201 and r.json()["name"] == "db"
    r = client.post("/v1/security-groups", content=DB, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 409
    bad = {"name": "k", "rules": [{"direction": "egress", "protocol": "tcp"}] * 3
           + [{"direction": "egress", "protocol": "tcp", "port_range_min": 70000}]}
    r = client.post("/v1/security-groups", json=bad)
    assert r.status_code == 400 and r.json()["field"] == "rules[3].port_range_min", r.text
    r = client.put("/v1/security-groups/db", json={"name": "other"})
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = client.put("/v1/security-groups/nope", json={})
    assert r.status_code == 404
    r = client.post("/v1/security-groups", content=b"name: x\n" + b"#" * (600 << 10),
                    headers={"Content-Type": "application/yaml"})
    assert r.status_code == 413
    assert sorted(g["name"] for g in client.get("/v1/security-groups").json()) == ["db", "j"]
    assert client.get("/v1/security-groups/db").json()["generation"] == 1


def test_run_with_groups_and_update_them_live(sg: Server, tmp_path: Path, busybox_image: str) -> None:
    ok(sg, "sg", "create", "-f", write(tmp_path, "web.yaml", WEB))
    ok(sg, "sg", "create", "-f", write(tmp_path, "db.yaml", DB))
    # an unknown group: a 404 before anything is made (no container, no volume)
    vol = unique("sgvol")
    code, _, err = sb(sg, "run", "-d", "--sg", "web", "--sg", "nope", "-v", f"{vol}:/data", busybox_image, "true")
    assert code == 1 and "no such security group: nope" in err
    assert ok(sg, "ps", "-a", "-q") == "" and vol not in ok(sg, "volume", "ls", "-q")
    name = unique("sgrun")
    ok(sg, "run", "-d", "--name", name, "--sg", "web", busybox_image, "sleep", "300")
    assert groups_of(sg, name) == ["web"]
    assert json.loads(ok(sg, "sg", "inspect", "web"))["in_use_by"] == [name]
    code, _, err = sb(sg, "sg", "rm", "web")
    assert code == 1 and "in use" in err and name in err
    assert ok(sg, "update", "--sg-add", "db", "--sg-rm", "web", name).strip() == name
    assert groups_of(sg, name) == ["db"]
    for args, words in (
        (["--sg-add", "nope"], "no such security group: nope"),
        (["--sg-add", "db"], "already in security group db"),
        (["--sg-rm", "web"], "not in security group web"),
        (["--sg-add", "web", "--sg-rm", "web"], "both added and removed"),
        ([], "nothing to update"),
        (["--sg-add", "web", "--sg-add", "nope"], "no such security group: nope"),  # all or nothing
    ):
        code, _, err = sb(sg, "update", *args, name)
        assert code == 1 and words in err, (args, err)
    assert groups_of(sg, name) == ["db"]
    assert "Up" in ok(sg, "ps")  # changed live: it kept running
    ok(sg, "sg", "rm", "web")
    code, _, err = sb(sg, "update", "--sg-add", "db", "nope-container")
    assert code == 1 and "no such container" in err


def test_another_tenants_group_is_unknown(sg: Server, tmp_path: Path, busybox_image: str) -> None:
    ok(sg, "sg", "create", "-f", write(tmp_path, "web.yaml", WEB))
    name = unique("sgmine")
    ok(sg, "run", "-d", "--name", name, "--sg", "web", busybox_image, "sleep", "300")
    pull(sg, OTHER, busybox_image)
    for args in (["sg", "inspect", "web"], ["sg", "rm", "web"],
                 ["run", "-d", "--sg", "web", busybox_image, "true"]):
        code, _, err = sb(sg, *args, tenant=OTHER)
        assert code == 1 and "no such security group: web" in err, (args, err)
    assert names(sg, OTHER) == [] and ok(sg, "ps", "-a", "-q", tenant=OTHER) == ""
    code, _, err = sb(sg, "sg", "create", "-f", write(tmp_path, "ref.yaml", DB.replace(
        "port_range_min: 53", "port_range_min: 53, remote_group_name: web")), tenant=OTHER)
    assert code == 1 and "no such security group: web" in err
    # the same name in the other tenant is another group, with its own members
    ok(sg, "sg", "create", "-f", write(tmp_path, "web2.yaml", DB.replace("name: db", "name: web")), tenant=OTHER)
    assert json.loads(ok(sg, "sg", "inspect", "web", tenant=OTHER))["in_use_by"] == []
    assert json.loads(ok(sg, "sg", "inspect", "web"))["in_use_by"] == [name]


def test_the_docker_cli_attaches_groups_with_the_hyper_label(sg: Server, tmp_path: Path, busybox_image: str) -> None:
    ok(sg, "sg", "create", "-f", write(tmp_path, "web.yaml", WEB))
    docker = DockerCli(sg, TENANT, docker_config(sg, TENANT, tmp_path))
    name = unique("sgdocker")
    docker.ok("run", "-d", "--name", name, "--label", "sh_hyper_sg_web=yes", "--label", "team=a", busybox_image,
              "sleep", "300")
    assert groups_of(sg, name) == ["web"]
    [info] = docker.inspect(name)
    assert info["Config"]["Labels"]["sh_hyper_sg_web"] == "yes" and info["Config"]["Labels"]["team"] == "a"
    ok(sg, "sg", "create", "-f", write(tmp_path, "db.yaml", DB))
    ok(sg, "update", "--sg-add", "db", "--sg-rm", "web", name)
    labels = docker.inspect(name)[0]["Config"]["Labels"]
    assert labels.get("sh_hyper_sg_db") == "yes" and "sh_hyper_sg_web" not in labels
    member = docker.inspect(name)[0]["Id"][:12]
    assert docker.lines("ps", "-q", "--filter", "label=sh_hyper_sg_db=yes") == [member]
    assert docker.lines("ps", "-q", "--filter", "label=sh_hyper_sg_web") == []
    r = docker("create", "--label", "sh_hyper_sg_nope=yes", busybox_image, "true")
    assert r.returncode != 0 and "no such security group: nope" in r.stderr, r.stderr
    r = docker("create", "--label", "sh_hyper_sg_web=no", busybox_image, "true")
    assert r.returncode != 0 and "takes the value yes" in r.stderr, r.stderr
    assert docker.lines("ps", "-a", "-q") == [member]


def test_a_quick_fuzz_of_the_group_routes_never_gets_a_500(sg: Server, api: Callable[[str], httpx.Client]) -> None:
    client = api(TENANT)
    assert client.post("/v1/security-groups", json={"name": "f"}).status_code == 201
    junk = [b"", b"null", b"[]", b"1", b'"x"', b"{}", b'{"name": null}', b'{"name": "f", "rules": {}}',
            b'{"name": "f", "rules": [null]}', b'{"name": "f", "rules": [{"direction": []}]}',
            b'{"name": "f", "description": 5}', b'{"name": "f", "rules": [{"remote_ip_prefix": 5}]}',
            b"\x00\xff", b"? [a]\n: b\n", b"name: !!binary aGk=\n", b"name: f\nrules: [!!set {a: null}]\n",
            b"name: 2001-13-45\n", b"name: f\nrules: [{direction: ingress, protocol: tcp, port_range_min: 1e400}]\n",
            b"%YAML 9.9\n---\nname: f\n", b"name: f\r\n\tbad"]
    failures = []
    for method, path in (("POST", "/v1/security-groups"), ("PUT", "/v1/security-groups/f"),
                         ("PUT", "/v1/security-groups/%ff"), ("POST", "/v1/containers/nosuch/update"),
                         ("POST", "/containers/create")):
        for body in junk:
            for kind in ("application/json", "application/yaml"):
                r = client.request(method, path, content=body, headers={"Content-Type": kind})
                if r.status_code >= 500 or not r.headers.get("content-type", "").startswith("application/json"):
                    failures.append((method, path, body, kind, r.status_code, r.text[:200]))
    for labels in ({"sh_hyper_sg_x": 5}, {"sh_hyper_sg_": "yes"}, {"sh_hyper_sg_a b": "yes"}, []):
        r = client.post("/containers/create", json={"Image": "busybox", "Labels": labels})
        if r.status_code != 400:
            failures.append(("docker labels", labels, r.status_code, r.text[:200]))
    assert not failures, failures
    assert [g["name"] for g in client.get("/v1/security-groups").json()] == ["f"]
    # only {} (JSON or YAML) was a valid update: the name comes from the path, and no rules
    assert client.get("/v1/security-groups/f").json()["generation"] == 3
