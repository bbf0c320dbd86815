"""The quick start's local busybox image: built from the host's busybox-static with umoci, no registry needed."""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seabox.errors import Unavailable

BUSYBOX_BINARY = Path("/bin/busybox")
LAYOUT_TAG = "latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def run(*argv: str | Path) -> None:
    """Run a tool; its stderr becomes the error if it fails."""
    try:
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    except FileNotFoundError:
        raise Unavailable(f"{argv[0]} is not installed (Debian package {argv[0]})") from None
    if result.returncode != 0:
        raise Unavailable(f"{' '.join(map(str, argv))} failed: {result.stderr.strip()}")


def populate(rootfs: Path, binary: Path = BUSYBOX_BINARY) -> list[str]:
    """Lay out a tiny busybox system in ROOTFS: the static binary, a link per applet and a few config files;
    the applets linked."""
    for name in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "var"):
        (rootfs / name).mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(binary, rootfs / "bin" / "busybox")
    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return applets


@contextmanager
def busybox_layout(binary: Path = BUSYBOX_BINARY) -> Iterator[Path]:
    """An OCI layout of the busybox image (tag 'latest', command `sh`) in a temp dir removed after the block."""
    if not binary.exists():
        raise Unavailable(f"{binary} is missing (Debian package busybox-static)")
    workdir = Path(tempfile.mkdtemp(prefix="seabox-images-"))
    try:
        layout = workdir / "busybox"
        image = f"{layout}:{LAYOUT_TAG}"
        bundle = workdir / "bundle"
        run("umoci", "init", "--layout", layout)
        run("umoci", "new", "--image", image)
        run("umoci", "unpack", "--image", image, bundle)
        populate(bundle / "rootfs", binary)
        run("umoci", "repack", "--image", image, bundle)
        run("umoci", "config", "--image", image, "--config.cmd", "sh", "--config.env", PATH_ENV,
            "--architecture", OCI_ARCH.get(platform.machine(), platform.machine()), "--os", "linux")
        run("umoci", "gc", "--layout", layout)
        yield layout
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def busybox_archive(name: str = "busybox:latest") -> Iterator[Path]:
    """A `docker save`-style tarball of the busybox image tagged NAME, removed after the block."""
    with busybox_layout() as layout:
        archive = layout.parent / "busybox.tar"
        run("skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:{LAYOUT_TAG}",
            f"docker-archive:{archive}:{name}")
        yield archive
