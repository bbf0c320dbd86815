"""A container's files through the docker CLI and SDK: `docker cp` both ways, export, diff, and hostile archives."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, pull, sdk_client, unique
from tests.fixtures.server import Server, class_tenant, param_of


@pytest.fixture
def tenant(request: pytest.FixtureRequest, server: Server) -> str:
    return class_tenant(server, "dockerfiles", param_of(request))


each_class = pytest.mark.parametrize("tenant", RUNTIME_CLASSES, indirect=True)


@pytest.fixture
def image(server: Server, tenant: str, busybox_image: str) -> Iterator[str]:
    with cleaned(server, tenant):
        pull(server, tenant, busybox_image)
        yield busybox_image


@pytest.fixture
def dcli(server: Server, tenant: str, image: str, tmp_path: Path) -> DockerCli:
    return DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


@pytest.fixture
def sdk(server: Server, tenant: str, image: str, tmp_path: Path) -> Iterator[docker.DockerClient]:
    client = sdk_client(server, tenant, tmp_path / "sdk")
    try:
        yield client
    finally:
        client.close()


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, b""


def host_tree(src: Path, text: str, mode: int) -> Path:
    """SRC made on the host with sub/hello.txt holding TEXT and run.sh of MODE, for `docker cp` into a container."""
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "hello.txt").write_text(text)
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(mode)
    return src


@each_class
def test_docker_cp_both_ways_on_a_running_container(dcli: DockerCli, image: str, tmp_path: Path) -> None:
    name = unique("cp")
    dcli.ok("run", "-d", "--name", name, image, "sleep", "60")
    src = host_tree(tmp_path / "in", "hello from the host\n", 0o755)
    dcli.ok("cp", str(src), f"{name}:/copied")
    assert dcli.ok("exec", name, "cat", "/copied/sub/hello.txt") == "hello from the host\n"
    assert dcli.ok("exec", name, "stat", "-c", "%a", "/copied/run.sh").strip() == "755"
    dcli.ok("exec", name, "sh", "-c", "echo made inside > /copied/inside.txt")
    out = tmp_path / "out"
    dcli.ok("cp", f"{name}:/copied", str(out))
    assert (out / "inside.txt").read_text() == "made inside\n"
    assert (out / "sub" / "hello.txt").read_text() == "hello from the host\n"
    r = dcli("cp", f"{name}:/no/such/file", str(tmp_path / "x"))
    assert r.returncode == 1 and "Could not find the file /no/such/file" in r.stderr


def test_docker_cp_into_a_created_and_out_of_a_stopped_container(dcli: DockerCli, image: str, tmp_path: Path) -> None:
    name = unique("cpstop")
    dcli.ok("create", "--name", name, image, "sh", "-c", "cat /config.txt > /result.txt")
    (tmp_path / "config.txt").write_text("set before start\n")
    dcli.ok("cp", str(tmp_path / "config.txt"), f"{name}:/config.txt")
    dcli.ok("start", "-a", name)
    dcli.ok("cp", f"{name}:/result.txt", str(tmp_path / "result.txt"))
    assert (tmp_path / "result.txt").read_text() == "set before start\n"


def test_docker_diff_and_export(dcli: DockerCli, image: str, tmp_path: Path) -> None:
    name = unique("diff")
    dcli.ok("run", "--name", name, image, "sh", "-c", "echo new > /added.txt; rm /bin/ls; echo x >> /etc/passwd")
    lines = set(dcli.lines("diff", name))
    assert {"A /added.txt", "D /bin/ls", "C /etc", "C /etc/passwd", "C /bin"} <= lines
    assert not any(line.endswith("/bin/sh") for line in lines)
    dcli.ok("export", "-o", str(tmp_path / "fs.tar"), name)
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = set(tar.getnames())
        assert {"added.txt", "bin/sh", "etc/passwd"} <= names and "bin/ls" not in names
        assert tar.extractfile("added.txt").read() == b"new\n"  # type: ignore[union-attr]


@each_class
def test_sdk_put_and_get_archive(sdk: docker.DockerClient, image: str) -> None:
    c = sdk.containers.run(image, ["sleep", "60"], detach=True)
    c.exec_run(["mkdir", "/dest"])
    info = tarfile.TarInfo("owned.txt")
    info.uid, info.gid, info.mode = 1234, 4321, 0o640
    assert c.put_archive("/dest", _tar((info, b"data")))
    assert c.exec_run(["stat", "-c", "%u:%g:%a", "/dest/owned.txt"]).output == b"1234:4321:640\n"
    bits, st = c.get_archive("/dest/owned.txt")
    assert st["name"] == "owned.txt" and st["size"] == 4 and st["mode"] & 0o777 == 0o640
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
        member = tar.getmember("owned.txt")
        assert (member.uid, member.gid) == (1234, 4321)
        assert tar.extractfile(member).read() == b"data"  # type: ignore[union-attr]
    c.exec_run(["ln", "-s", "/etc/hostname", "/dest/link"])
    _, st = c.get_archive("/dest/link")
    assert st["linkTarget"] == "/etc/hostname" and st["mode"] & (1 << 27)
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/nowhere")
    with pytest.raises(docker.errors.APIError, match="not a directory"):
        c.put_archive("/etc/hostname", _tar(_file("x")))


@each_class
def test_docker_cp_reaches_volumes_as_the_container_sees_them_and_refuses_tmpfs_and_read_only_mounts(
        sdk: docker.DockerClient, dcli: DockerCli, image: str, tmp_path: Path, outside: Path) -> None:
    vol, ro = unique("cpvol"), unique("cpro")
    sdk.volumes.create(ro)
    c = sdk.containers.run(image, ["sleep", "60"], detach=True, tmpfs={"/scratch": "size=1m"},
                           volumes={vol: {"bind": "/data", "mode": "rw"}, ro: {"bind": "/ro", "mode": "ro"}})
    later = None
    try:
        (tmp_path / "f").write_text("into the volume\n")
        dcli.ok("cp", str(tmp_path / "f"), f"{c.name}:/data/f")
        assert c.exec_run(["cat", "/data/f"]).output == b"into the volume\n"
        c.exec_run(["sh", "-c", "echo from inside > /data/inside"])
        dcli.ok("cp", f"{c.name}:/data/inside", str(tmp_path / "inside"))
        assert (tmp_path / "inside").read_text() == "from inside\n"
        # a symlink in the volume resolves inside the container's root, never on the host
        c.exec_run(["sh", "-c", f"mkdir -p {outside} && ln -s {outside} /data/host"])
        assert c.put_archive("/data/host", _tar(_file("via-volume-link")))
        assert list(outside.iterdir()) == []
        assert c.exec_run(["cat", str(outside / "via-volume-link")]).output == b"x"
        for path, words in (("/ro", "mounted read-only at /ro"), ("/ro/sub", "mounted read-only"),
                            ("/scratch/", "is on a tmpfs")):
            with pytest.raises(docker.errors.APIError, match=words) as refused:
                c.put_archive(path, _tar(_file("x")))
            assert refused.value.status_code == 400
        assert c.exec_run(["ls", "-A", "/ro", "/scratch"]).output.split() == [b"/ro:", b"/scratch:"]  # nothing
        r = dcli("cp", str(tmp_path / "f"), f"{c.name}:/scratch/f")
        assert r.returncode == 1 and "is on a tmpfs" in r.stderr, r.stderr
        # a stopped container's volumes take files too, and the next container that mounts them sees them
        c.stop(timeout=0)
        dcli.ok("cp", str(tmp_path / "f"), f"{c.name}:/data/after-stop")
        later = sdk.containers.run(image, ["cat", "/d/after-stop"], volumes={vol: {"bind": "/d", "mode": "ro"}})
        assert later == b"into the volume\n"
    finally:
        c.remove(force=True)
        sdk.containers.prune()
        sdk.volumes.get(vol).remove()
        sdk.volumes.get(ro).remove()


def test_a_read_only_container_takes_files_only_on_its_writable_volumes(
        sdk: docker.DockerClient, image: str) -> None:
    vol = unique("rovol")
    c = sdk.containers.create(image, ["sleep", "60"], read_only=True, volumes={vol: {"bind": "/data", "mode": "rw"}})
    try:
        with pytest.raises(docker.errors.APIError, match="root filesystem is read-only") as refused:
            c.put_archive("/tmp", _tar(_file("x")))
        assert refused.value.status_code == 400
        assert c.put_archive("/data", _tar(_file("kept", b"on the volume")))  # never started: mounted for the copy
        # through a symlink in the volume, back into the read-only root: refused by the mount itself
        assert c.put_archive("/data", _tar(_symlink("etc", "/etc")))
        with pytest.raises(docker.errors.APIError, match="Read-only file system") as refused:
            c.put_archive("/data/etc", _tar(_file("planted")))
        assert refused.value.status_code == 400
        c.start()
        assert c.exec_run(["cat", "/data/kept"]).output == b"on the volume"
        assert c.exec_run(["ls", "/etc/planted"]).exit_code != 0
    finally:
        c.remove(force=True)
        sdk.volumes.get(vol).remove()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host directory the tests' archives aim at (not under /tmp: gVisor mounts its own tmpfs there)."""
    path = Path("/var/tmp") / unique("seabox-sentinel")
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@each_class
def test_a_hostile_archive_writes_nothing_outside_the_container(sdk: docker.DockerClient, image: str,
                                                                outside: Path) -> None:
    c = sdk.containers.run(image, ["sleep", "60"], detach=True)
    c.exec_run(["mkdir", "-p", "/dest", str(outside)])
    # absolute names and absolute symlinks (in the archive) land inside the container's root
    hostile = _tar(_file(str(outside / "abs")), _symlink("esc", str(outside)), _file("esc/via-link"),
                   _symlink("up", "../../../../../../.."), _file("up" + str(outside / "via-up")))
    assert c.put_archive("/dest", hostile)
    assert list(outside.iterdir()) == []
    assert c.exec_run(["cat", "/dest" + str(outside / "abs")]).output == b"x"
    assert c.exec_run(["cat", str(outside / "via-link")]).output == b"x"
    assert c.exec_run(["cat", str(outside / "via-up")]).output == b"x"
    # a symlink already in the rootfs, absolute or relative, resolves inside it too
    c.exec_run(["ln", "-s", str(outside), "/abslink"])
    assert c.put_archive("/abslink", _tar(_file("from-rootfs-link")))
    assert list(outside.iterdir()) == []
    assert c.exec_run(["cat", str(outside / "from-rootfs-link")]).output == b"x"
    # `..` out of the target, and device nodes, are refused
    with pytest.raises(docker.errors.APIError, match="outside the target directory"):
        c.put_archive("/dest", _tar(_file("../../.." + str(outside / "dots"))))
    device = tarfile.TarInfo("disk")
    device.type, device.devmajor, device.devminor = tarfile.BLKTYPE, 8, 0
    with pytest.raises(docker.errors.APIError, match="device node"):
        c.put_archive("/dest", _tar((device, b"")))
    foreign = tarfile.TarInfo("foreign")
    foreign.uid, foreign.mode = 100000, 0o4755
    with pytest.raises(docker.errors.APIError, match="outside the container's ids"):
        c.put_archive("/dest", _tar((foreign, b"")))
    assert list(outside.iterdir()) == []
    # reading follows the same rules: a link to the host's root reads the container's
    c.exec_run(["ln", "-s", "/", "/rootlink"])
    bits, _ = c.get_archive("/rootlink/.")
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
        assert "./bin/busybox" in tar.getnames() or "./bin/sh" in tar.getnames()
