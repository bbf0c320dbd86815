"""Mount-table helpers every node module shares: is a path a mount point, mount by libc, lazy unmount."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from seabox.errors import RuntimeFailure

MS_NOSUID = 0x2
MS_NODEV = 0x4
_MNT_DETACH = 2
_MOUNTINFO = Path("/proc/self/mountinfo")
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


def mount(source: str, target: str, fstype: str, flags: int, options: str) -> None:
    """mount(2); RuntimeFailure naming the target and the kernel's reason if it fails."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, options.encode()) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"cannot mount {fstype} at {target}: {os.strerror(err)}")


def unmount(path: Path) -> None:
    """Unmount everything stacked at path, lazily (open files do not block it); no-op if nothing is."""
    target = os.path.realpath(path).encode()
    for _ in range(_MAX_UNMOUNTS):
        if not path.exists() or not is_mounted(path):
            return
        if _libc.umount2(target, _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):  # raced with another unmount
                continue
            raise RuntimeFailure(f"cannot unmount {path}: {os.strerror(err)}")
    raise RuntimeFailure(f"{path} is still mounted after {_MAX_UNMOUNTS} unmounts")
