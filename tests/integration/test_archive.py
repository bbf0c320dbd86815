"""The node's tar streams of a container's files (root: chroot, whiteout devices): changes, the layer tar, confined writes."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from seabox.errors import InvalidArgument
from seabox.node import archive
from seabox.protocol.archive import UploadOptions


def _overlay_dirs(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "gone", lower / "swapped" / "old", upper / "etc", upper / "swapped"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (upper / "etc" / "passwd").write_text("root\ntenant\n")
    (upper / "etc" / "added").write_text("new\n")
    os.mknod(upper / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # overlayfs' whiteout
    os.setxattr(upper / "swapped", "trusted.overlay.opaque", b"y")
    return lower, upper


async def _layer(upper: Path) -> bytes:
    return b"".join([c async for c in await archive.upper_layer_tar(upper, 0)])


def test_changes_and_the_layer_tar_of_an_upper_dir(tmp_path: Path) -> None:
    lower, upper = _overlay_dirs(tmp_path)
    found = {(c.Path, c.Kind) for c in archive.changes(upper, lower)}
    assert found == {("/etc", 0), ("/etc/passwd", 0), ("/etc/added", 1), ("/gone", 2), ("/swapped", 0)}
    data = asyncio.run(_layer(upper))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert names == {"etc", "etc/passwd", "etc/added", ".wh.gone", "swapped", "swapped/.wh..wh..opq"}


def test_writes_stay_in_the_root_and_owners_are_shifted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dest").mkdir(parents=True)
    (root / "dest" / "hostlink").symlink_to(tmp_path)  # a rootfs symlink to the host path of the root's parent
    (root / str(tmp_path).lstrip("/")).mkdir(parents=True)  # which the container has too
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hostlink/sentinel")
        info.size, info.uid = 1, 7
        tar.addfile(info, io.BytesIO(b"x"))

    async def body() -> AsyncIterator[bytes]:
        yield buf.getvalue()

    asyncio.run(archive.write_tar(root, "/dest", body(), 100000, UploadOptions()))
    assert not (tmp_path / "sentinel").exists()
    inside = root / str(tmp_path).lstrip("/") / "sentinel"
    assert inside.read_bytes() == b"x" and inside.stat().st_uid == 100007
    with pytest.raises(InvalidArgument, match="not a tar archive"):
        asyncio.run(archive.write_tar(root, "/dest", _bytes(b"not a tar" * 100), 0, UploadOptions()))


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data
