"""Container root filesystems: an overlayfs of an image's unpacked rootfs under a per-container upper dir."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from seabox.errors import InvalidArgument, RuntimeFailure

_MNT_DETACH = 2
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MOUNTINFO = Path("/proc/self/mountinfo")
# Characters overlayfs would read as option or lowerdir separators.
_UNSAFE_PATH_CHARS = ",:\\"
_MAX_UNMOUNTS = 16

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _unescape_mountinfo(field: str) -> str:
    """Undo the octal escapes (\\040 for a space and so on) of a /proc/self/mountinfo path."""
    out = bytearray()
    raw = field.encode()
    i = 0
    while i < len(raw):
        if raw[i] == ord("\\") and i + 3 < len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def is_mounted(path: Path) -> bool:
    """True if something is mounted exactly at path (per /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    for line in _MOUNTINFO.read_text().splitlines():
        fields = line.split(" ")
        if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
            return True
    return False


def _checked(path: Path) -> str:
    resolved = os.path.realpath(path)
    if any(c in resolved for c in _UNSAFE_PATH_CHARS):
        raise InvalidArgument(f"overlay path {resolved} must not contain any of {_UNSAFE_PATH_CHARS!r}")
    return resolved


def mount_overlay(lower: Path, container_dir: Path, owner: int = 0) -> Path:
    """Mount lower (read-only) under container_dir/upper at container_dir/rootfs; return that path.

    container_dir/upper keeps the container's changes across unmounts; calling this again while
    the overlay is mounted just returns the mount point. A new upper dir belongs to host uid and
    gid owner (the container's root in its user namespace); the mount is nosuid and nodev, so no
    tenant file is a setuid program or a device for the host (containers get devices from /dev).
    """
    merged = container_dir / "rootfs"
    if merged.exists() and is_mounted(merged):
        return merged
    if not lower.is_dir():
        raise InvalidArgument(f"image rootfs {lower} is not a directory")
    for name in ("upper", "work", "rootfs"):
        (container_dir / name).mkdir(parents=True, exist_ok=True)
    upper = os.lstat(container_dir / "upper")
    if (upper.st_uid, upper.st_gid) != (owner, owner):
        os.chown(container_dir / "upper", owner, owner)
    options = (
        f"lowerdir={_checked(lower)},upperdir={_checked(container_dir / 'upper')},"
        f"workdir={_checked(container_dir / 'work')}"
    )
    target = _checked(merged)
    flags = _MS_NOSUID | _MS_NODEV
    if _libc.mount(b"overlay", target.encode(), b"overlay", flags, options.encode()) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"cannot mount overlay at {target}: {os.strerror(err)}")
    return merged


def unmount_overlay(container_dir: Path) -> None:
    """Unmount container_dir/rootfs (lazily, so open files do not block it); no-op if not mounted."""
    merged = container_dir / "rootfs"
    target = os.path.realpath(merged).encode()
    for _ in range(_MAX_UNMOUNTS):
        if not merged.exists() or not is_mounted(merged):
            return
        if _libc.umount2(target, _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):  # raced with another unmount
                continue
            raise RuntimeFailure(f"cannot unmount {merged}: {os.strerror(err)}")
    raise RuntimeFailure(f"{merged} is still mounted after {_MAX_UNMOUNTS} unmounts")
