"""Image operations through the real docker CLI and SDK: tag, save | load, import, history, commit, image prune, build's refusal."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, ok, pull, sdk_client, unique
from tests.fixtures.server import SEABOX, Server


@pytest.fixture
def dcli(server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    tenant = unique("imgops")
    server.tenant(tenant)
    with cleaned(server, tenant):
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


@pytest.fixture
def other(server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    tenant = unique("imgops-b")
    server.tenant(tenant)
    with cleaned(server, tenant):
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


@pytest.fixture
def image(dcli: DockerCli, busybox_image: str) -> str:
    pull(dcli.server, dcli.tenant, busybox_image)
    return busybox_image


def _rootfs_tar(path: Path) -> Path:
    """A one-binary root filesystem tarball (gzip): /bin/busybox and a file /hello."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        data = b"imported\n"
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_tag_then_run_by_the_new_name_and_another_tenant_cannot_see_it(
        dcli: DockerCli, other: DockerCli, image: str) -> None:
    dcli.ok("tag", image, "mine/app:1")
    assert dcli.ok("run", "--rm", "mine/app:1", "echo", "tagged").strip() == "tagged"
    assert "mine/app" in dcli.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    r = other("tag", "mine/app:1", "stolen:1")
    assert r.returncode != 0 and "no such image" in r.stderr.lower()
    r = other("save", "mine/app:1")
    assert r.returncode != 0 and "no such image" in r.stderr.lower()
    assert other("history", "mine/app:1").returncode != 0


def test_save_load_round_trip_of_two_images(dcli: DockerCli, other: DockerCli, image: str, tmp_path: Path) -> None:
    dcli.ok("tag", image, "round/one:1")
    dcli.ok("tag", image, "round/two:2")
    archive = tmp_path / "saved.tar"
    dcli.ok("save", "-o", str(archive), "round/one:1", "round/two:2")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(t for e in manifest for t in e["RepoTags"]) == ["docker.io/round/one:1", "docker.io/round/two:2"]
    # the other tenant loads it and runs it by the saved name
    out = other.ok("load", "-i", str(archive))
    assert "round/one:1" in out and "round/two:2" in out
    assert other.ok("run", "--rm", "round/two:2", "echo", "loaded").strip() == "loaded"


def test_import_a_tarball_then_run_it_with_its_changes(dcli: DockerCli, tmp_path: Path) -> None:
    tarball = _rootfs_tar(tmp_path / "rootfs.tgz")
    out = dcli.ok("import", "--change", "CMD [\"/bin/busybox\", \"cat\", \"/hello\"]", "--change", "ENV GREETING=hi",
                  "-m", "from a tarball", str(tarball), "imported/app:1")
    assert out.strip().startswith("sha256:")
    assert dcli.ok("run", "--rm", "imported/app:1").strip() == "imported"
    assert dcli.ok("run", "--rm", "imported/app:1", "/bin/busybox", "env").count("GREETING=hi") == 1
    # from stdin too
    r = subprocess.run(["sh", "-c", f"cat {tarball} | /usr/local/bin/docker import - imported/stdin:1"], env=dcli.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "from a tarball" in dcli.ok("history", "--no-trunc", "imported/app:1")


def test_import_refuses_a_url_and_unknown_changes(dcli: DockerCli, tmp_path: Path) -> None:
    r = dcli("import", "http://127.0.0.1:9/rootfs.tar", "x:1")
    assert r.returncode != 0 and "fromSrc" in r.stderr
    r = dcli("import", "--change", "RUN rm -rf /", str(_rootfs_tar(tmp_path / "r.tgz")), "x:1")
    assert r.returncode != 0 and "only CMD" in r.stderr


def test_history_lists_the_layers(dcli: DockerCli, image: str) -> None:
    rows = [json.loads(line) for line in dcli.lines("history", "--format", "{{json .}}", image)]
    assert rows and rows[0]["ID"] != "<missing>"
    assert any(row["Size"] != "0B" for row in rows)


def test_commit_keeps_the_written_file_and_the_changed_cmd(dcli: DockerCli, other: DockerCli, image: str) -> None:
    name = unique("commit")
    dcli.ok("run", "--name", name, image, "sh", "-c", "echo committed > /data.txt && rm /bin/true")
    out = dcli.ok("commit", "--change", "CMD [\"cat\", \"/data.txt\"]", "--change", "LABEL stage=two",
                  "--change", "STOPSIGNAL SIGINT",
                  "-a", "Ann <ann@example.com>", "-m", "wrote data", name, "committed/app:1")
    assert out.strip().startswith("sha256:")
    assert dcli.ok("run", "--rm", "committed/app:1").strip() == "committed"
    # the deleted file is a whiteout in the new layer: gone in the new image
    assert dcli("run", "--rm", "committed/app:1", "ls", "/bin/true").returncode != 0
    inspected = dcli.inspect("committed/app:1")[0]
    assert inspected["Config"]["Cmd"] == ["cat", "/data.txt"] and inspected["Config"]["Labels"] == {"stage": "two"}
    assert inspected["Config"]["StopSignal"] == "SIGINT"
    # RootFS.Layers: the config's diff_ids, the base image's then the commit's own
    base = dcli.inspect(image)[0]["RootFS"]
    assert base["Type"] == "layers" and base["Layers"], base
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", layer) for layer in base["Layers"]), base
    layers = inspected["RootFS"]["Layers"]
    assert layers[:-1] == base["Layers"] and len(layers) == len(base["Layers"]) + 1 and layers[-1] not in base["Layers"]
    assert "wrote data" in dcli.ok("history", "--no-trunc", "committed/app:1")
    assert other("run", "--rm", "committed/app:1").returncode != 0
    r = dcli("commit", "--change", "HEALTHCHECK NONE", name, "x:2")
    assert r.returncode != 0 and "changes" in r.stderr


def test_commit_of_a_container_that_never_ran_keeps_what_docker_cp_put_in_it(
        dcli: DockerCli, image: str, tmp_path: Path) -> None:
    name = unique("fresh")
    dcli.ok("create", "--name", name, image, "cat", "/copied.txt")
    (tmp_path / "copied.txt").write_text("from the host\n")
    dcli.ok("cp", str(tmp_path / "copied.txt"), f"{name}:/copied.txt")
    dcli.ok("commit", name, "fresh/app:1")
    assert dcli.ok("run", "--rm", "fresh/app:1") == "from the host\n"
    assert dcli.ok("inspect", "-f", "{{.State.Status}}", name) == "created\n"


def _human(n: float) -> str:
    """A byte count as the docker CLI prints it (go-units HumanSize: 4 significant digits, powers of 1000)."""
    units = ["B", "kB", "MB", "GB", "TB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.4g}{units[i]}"


def _actions(dcli: DockerCli, name: str, since: str) -> list[str]:
    return [a for a in dcli.lines("events", "--since", since, "--until", str(time.time() + 1), "--filter",
                                  f"container={name}", "--format", "{{.Action}}") if a in ("pause", "unpause")]


def test_commit_pauses_a_running_container_unless_told_not_to_and_thaws_it_even_on_failure(
        dcli: DockerCli, image: str) -> None:
    name = unique("busy")
    dcli.ok("run", "-d", "--name", name, image, "sh", "-c", "echo x > /mark; sleep 300")
    since = str(time.time() - 1)
    dcli.ok("commit", name, "paused/app:1")
    assert _actions(dcli, name, since) == ["pause", "unpause"]
    assert dcli.ok("inspect", "-f", "{{.State.Status}}", name) == "running\n"
    dcli.ok("commit", "--pause=false", name, "live/app:1")
    assert _actions(dcli, name, since) == ["pause", "unpause"]  # no pause this time
    assert dcli.ok("run", "--rm", "live/app:1", "cat", "/mark") == "x\n"
    # the commit fails (the images quota is reached once the node made the image): thawed all the same
    images = len(dcli.lines("images", "-q"))
    ok(subprocess.run([*SEABOX, "admin", "quota", "set", dcli.tenant, f"images={images}", "--data-dir",
                       str(dcli.server.data_dir)], capture_output=True, text=True, check=False))
    r = dcli("commit", name, "over/quota:1")
    assert r.returncode == 1 and "images quota" in r.stderr, r.stderr
    assert _actions(dcli, name, since) == ["pause", "unpause"] * 2
    assert dcli.ok("inspect", "-f", "{{.State.Status}}", name) == "running\n"
    # one paused already stays paused
    dcli.ok("pause", name)
    r = dcli("commit", name, "over/quota:2")
    assert r.returncode == 1 and dcli.ok("inspect", "-f", "{{.State.Status}}", name) == "paused\n"


def test_image_prune_removes_dangling_then_unused_only(dcli: DockerCli, image: str, tmp_path: Path) -> None:
    dangling = dcli.ok("import", str(_rootfs_tar(tmp_path / "r.tgz"))).strip()
    dcli.ok("tag", image, "keep/used:1")
    used = unique("used")
    dcli.ok("create", "--name", used, "keep/used:1", "true")
    out = dcli.ok("image", "prune", "-f")
    assert dangling in out
    listed = dcli.ok("images", "-q", "--no-trunc")
    assert dangling not in listed and listed.strip()
    dcli.ok("import", str(_rootfs_tar(tmp_path / "r2.tgz")), "labelled/app:1")
    assert "labelled" not in dcli.ok("image", "prune", "-a", "-f", "--filter", "label=nothing=here")
    size = dcli.inspect("labelled/app:1")[0]["Size"]
    out = dcli.ok("image", "prune", "-a", "-f")
    assert "labelled/app:1" in out and size > 0
    # SpaceReclaimed: the unpacked bytes of the images it removed (the CLI prints 4 significant digits)
    assert f"Total reclaimed space: {_human(size)}" in out, out
    remaining = dcli.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "keep/used:1" in remaining and "labelled" not in remaining
    r = dcli("image", "prune", "-f", "--filter", "reference=x")
    assert r.returncode != 0 and "reference" in r.stderr


def test_build_is_refused_pointing_to_load(dcli: DockerCli, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    r = dcli.shell(f"DOCKER_BUILDKIT=0 /usr/local/bin/docker build -t x {tmp_path}")
    assert r.returncode != 0 and "docker load" in r.stderr


def test_sdk_commit_save_and_import(server: Server, dcli: DockerCli, image: str, tmp_path: Path) -> None:
    client = sdk_client(server, dcli.tenant, tmp_path)
    try:
        c = client.containers.run(image, ["sh", "-c", "echo sdk > /sdk.txt"], detach=True)
        c.wait(timeout=30)
        new = c.commit(repository="sdk/app", tag="1", changes=["CMD cat /sdk.txt"], conf={"Env": ["A=b"]})
        assert new.attrs["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /sdk.txt"] and "A=b" in new.attrs["Config"]["Env"]
        assert client.containers.run("sdk/app:1", remove=True).strip() == b"sdk"
        assert len(new.history()) >= 2
        blob = b"".join(client.images.get("sdk/app:1").save())
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            assert "manifest.json" in tar.getnames()
        pruned = client.images.prune(filters={"dangling": True})
        assert pruned["SpaceReclaimed"] >= 0
        with pytest.raises(docker.errors.APIError) as err:
            client.api.import_image_from_url("http://127.0.0.1:9/x.tar", repository="u")
        assert err.value.status_code == 400
    finally:
        client.close()
