"""Container root filesystems: an overlayfs of an image's unpacked rootfs under a per-container upper dir.

The upper and work dirs live on the container's own size-limited filesystem (a loop-mounted ext4
image, see seabox.node.loopfs), so writes past the container's disk size fail with ENOSPC.
"""

from __future__ import annotations

import os
from pathlib import Path

from seabox.errors import InvalidArgument
from seabox.node import loopfs
from seabox.node.mounts import MS_NODEV, MS_NOSUID, is_mounted, mount, unmount

# Characters overlayfs would read as option or lowerdir separators.
_UNSAFE_PATH_CHARS = ",:\\"


def _checked(path: Path) -> str:
    resolved = os.path.realpath(path)
    if any(c in resolved for c in _UNSAFE_PATH_CHARS):
        raise InvalidArgument(f"overlay path {resolved} must not contain any of {_UNSAFE_PATH_CHARS!r}")
    return resolved


def mount_overlay(
    lower: Path, container_dir: Path, disk_bytes: int, owner: int = 0, templates: Path | None = None
) -> Path:
    """Mount lower (read-only) under the container's upper dir at container_dir/rootfs; return that path.

    The upper dir sits on container_dir/disk.img (DISK_BYTES, made on first use, mounted at
    container_dir/disk) and keeps the container's changes across unmounts. Calling this again
    while everything is mounted just returns the mount point. Both mounts are nosuid,nodev, so no
    tenant file is a setuid program or a device for the host (containers get devices from /dev).
    The upper dir belongs to host uid and gid owner (the container's root in its user namespace);
    templates holds the empty disk images new ones are copied from (see loopfs.ensure_mounted).
    """
    merged = container_dir / "rootfs"
    if merged.exists() and is_mounted(merged):
        return merged
    if not lower.is_dir():
        raise InvalidArgument(f"image rootfs {lower} is not a directory")
    disk = container_dir / "disk"
    loopfs.ensure_mounted(container_dir / "disk.img", disk, disk_bytes, templates)
    upper = loopfs.tenant_root(disk / "upper", owner)
    (disk / "work").mkdir(exist_ok=True)
    merged.mkdir(exist_ok=True)
    options = f"lowerdir={_checked(lower)},upperdir={_checked(upper)},workdir={_checked(disk / 'work')}"
    mount("overlay", _checked(merged), "overlay", MS_NOSUID | MS_NODEV, options)
    return merged


def unmount_overlay(container_dir: Path) -> None:
    """Unmount container_dir/rootfs and the disk under it (lazily); no-op for what is not mounted."""
    unmount(container_dir / "rootfs")
    loopfs.release(container_dir / "disk")
