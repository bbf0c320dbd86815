"""Tenant images end to end: one tenant's pulls, tags and imports are invisible to another; disk is shared."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.docker_fixtures import cleaned, native
from tests.e2e.test_api import pull, run, wait
from tests.fixtures.images import LAYOUT_TAG
from tests.fixtures.server import Server


def q(ref: str) -> str:
    return quote(ref, safe="/:@")


@pytest.fixture
def tenants(server: Server) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two fresh tenants' clients; whatever they made is removed afterwards."""
    a, b = f"img-a-{uuid.uuid4().hex[:6]}", f"img-b-{uuid.uuid4().hex[:6]}"
    with cleaned(server, a, b), native(server, a) as ca, native(server, b) as cb:
        yield ca, cb


@pytest.fixture
def unique_image(registry: str, busybox_layout: Path, tmp_path: Path) -> str:
    """A busybox variant with its own image id (a label), pushed to the test registry; its reference."""
    layout = tmp_path / "layout"
    shutil.copytree(busybox_layout, layout)
    tag = uuid.uuid4().hex[:8]
    for argv in (
        ["umoci", "config", "--image", f"{layout}:{LAYOUT_TAG}", "--config.label", f"seabox.test={tag}"],
        ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
         f"oci:{layout}:{LAYOUT_TAG}", f"docker://{registry}/tenancy/{tag}:1"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    return f"{registry}/tenancy/{tag}:1"


def unpacked(server: Server, image_id: str) -> list[Path]:
    """The image's shared unpacked tree (runc containers add one id-shifted copy per tenant, name@base)."""
    return [p for p in (server.data_dir / "images" / "unpacked").iterdir() if p.name.startswith(f"sha256-{image_id[7:]}")
            and "@" not in p.name]  # fmt: skip


def all_unpacked(server: Server, image_id: str) -> list[Path]:
    return [p for p in (server.data_dir / "images" / "unpacked").iterdir() if image_id[7:] in p.name]


def test_pulls_tags_and_imports_of_one_tenant_are_invisible_to_another(
    tenants: tuple[httpx.Client, httpx.Client], busybox_image: str, busybox_oci_archive: Path
) -> None:
    a, b = tenants
    image_id = pull(a, busybox_image)["id"]
    r = a.post(f"/v1/images/{q(busybox_image)}/tag", json={"target": "private/secret:1"})
    assert r.status_code == 201, r.text
    assert "docker.io/private/secret:1" in r.json()["repo_tags"]
    # B has pulled nothing: no image, by name, by A's tag, by id or id prefix, in a listing or a run
    assert b.get("/v1/images").json() == []
    for ref in ("private/secret:1", busybox_image, image_id, image_id[7:19], image_id[7:]):
        assert b.get(f"/v1/images/{q(ref)}").status_code == 404, ref
        r = b.post("/v1/containers", json={"image": ref, "cmd": ["true"]})
        assert r.status_code == 404, (ref, r.text)
    assert b.delete(f"/v1/images/{image_id}").status_code == 404
    # B imports the same image from an archive: it gets the archive's name and nothing of A's
    r = b.post("/v1/images/import", content=busybox_oci_archive.read_bytes())
    assert r.status_code == 201, r.text
    [imported] = r.json()
    assert imported["id"] == image_id
    assert imported["repo_tags"] == ["docker.io/library/busybox:oci"] and imported["repo_digests"] == []
    [listed] = b.get("/v1/images").json()
    assert listed["repo_tags"] == ["docker.io/library/busybox:oci"] and listed["repo_digests"] == []
    # a container B runs by id is recorded under B's own name for the image
    c = run(b, image_id, ["true"])
    assert c["spec"]["image"] == "docker.io/library/busybox:oci"
    assert wait(b, c["id"]) == 0
    # and A's view did not grow B's import
    tags = a.get(f"/v1/images/{image_id}").json()["repo_tags"]
    assert "docker.io/library/busybox:oci" not in tags and "docker.io/private/secret:1" in tags


def test_docker_api_shows_each_tenant_only_its_names(
    tenants: tuple[httpx.Client, httpx.Client], busybox_image: str
) -> None:
    a, b = tenants
    image_id = pull(a, busybox_image)["id"]
    r = a.post(f"/images/{q(busybox_image)}/tag", params={"repo": "private/dock", "tag": "2"})
    assert r.status_code == 201, r.text
    assert "private/dock:2" in [t for i in a.get("/images/json").json() for t in i["RepoTags"]]
    assert a.get("/images/private/dock:2/json").json()["Id"] == image_id
    assert b.get("/images/json").json() == []
    for ref in ("private/dock:2", image_id, image_id[7:19]):
        r = b.get(f"/images/{q(ref)}/json")
        assert r.status_code == 404 and "message" in r.json(), ref
    r = b.post("/containers/create", json={"Image": image_id, "Cmd": ["true"]})
    assert r.status_code == 404, r.text
    assert b.post(f"/images/{image_id}/tag", params={"repo": "stolen"}).status_code == 404
    # pulling the image itself gives B the registry's name only, not A's tag
    assert b.post("/images/create", params={"fromImage": busybox_image}).status_code == 200
    [summary] = b.get("/images/json").json()
    assert summary["Id"] == image_id and all("private/dock" not in t for t in summary["RepoTags"])


def test_one_copy_on_disk_and_rmi_frees_it_only_when_no_tenant_or_container_needs_it(
    server: Server, tenants: tuple[httpx.Client, httpx.Client], unique_image: str
) -> None:
    a, b = tenants
    image_id = pull(a, unique_image)["id"]
    assert pull(b, unique_image)["id"] == image_id
    assert len(unpacked(server, image_id)) == 1
    keep = run(b, unique_image, ["sleep", "300"])
    r = a.delete(f"/v1/images/{q(unique_image)}")
    assert r.status_code == 200 and unique_image in r.json()["untagged"]
    assert a.get(f"/v1/images/{image_id}").status_code == 404 and a.get("/v1/images").json() == []
    # B's name, its running container and new containers all still work
    assert b.get(f"/v1/images/{q(unique_image)}").json()["id"] == image_id
    assert wait(b, run(b, unique_image, ["true"])["id"]) == 0
    assert b.get(f"/v1/containers/{keep['id']}").json()["status"]["state"] == "running"
    # B's last name goes only with force while its containers use the image; the data stays for them
    r = b.delete(f"/v1/images/{q(unique_image)}")
    assert r.status_code == 409 and "used by container" in r.json()["message"]
    assert b.delete(f"/v1/images/{q(unique_image)}", params={"force": "true"}).status_code == 200
    assert b.get("/v1/images").json() == [] and len(unpacked(server, image_id)) == 1
    # once no container uses it either, the image leaves the disk
    for c in b.get("/v1/containers", params={"all": "true"}).json():
        assert b.delete(f"/v1/containers/{c['id']}", params={"force": "true"}).status_code == 204
    assert all_unpacked(server, image_id) == []  # the tenants' id-shifted copies went too
    last = json.loads(a.post("/v1/images/pull", json={"image": unique_image}).text.splitlines()[-1])
    assert last["image"]["id"] == image_id and len(unpacked(server, image_id)) == 1


def test_cli_tag_names_an_image_for_its_tenant_only(server: Server, busybox_image: str) -> None:
    a, b = f"img-cli-a-{uuid.uuid4().hex[:6]}", f"img-cli-b-{uuid.uuid4().hex[:6]}"
    with cleaned(server, a, b):
        server.cli("pull", busybox_image, tenant=a, check=True)
        assert server.cli("tag", busybox_image, "mine/app:1", tenant=a, check=True).stdout == ""
        assert "mine/app" in server.cli("images", tenant=a, check=True).stdout
        server.cli("pull", busybox_image, tenant=b, check=True)
        assert "mine/app" not in server.cli("images", tenant=b, check=True).stdout
        r = server.cli("tag", "mine/app:1", "x:1", tenant=b)
        assert r.returncode == 1 and "no such image" in r.stderr
