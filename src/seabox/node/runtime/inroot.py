"""Reading files and making directories in a container rootfs without its symlinks leading out of it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
from pathlib import Path

_SYS_OPENAT2 = 437  # the same number on every architecture (generic syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2(root_fd: int, path: str, flags: int) -> int:
    """Open path as if root_fd were '/': '..' and absolute symlinks stay under it."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(root_fd),
        ctypes.c_char_p(path.encode()),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def read_file(rootfs: Path, path: str, limit: int) -> bytes | None:
    """The first `limit` bytes of the regular file at path in rootfs; None if missing or not regular."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _openat2(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_dirs(rootfs: Path, path: str, mode: int = 0o755, *, owner: int = 0) -> None:
    """Create directory path (and its missing parents) in rootfs, resolving every step inside it.

    New directories belong to host uid and gid owner (the container's root in its user namespace).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            try:
                os.close(_openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY))
                continue
            except FileNotFoundError:
                pass
            parent_fd = _openat2(root_fd, "/".join(parts[: depth - 1]) or ".", os.O_PATH | os.O_DIRECTORY)
            try:
                os.mkdir(parts[depth - 1], mode, dir_fd=parent_fd)
                os.chown(parts[depth - 1], owner, owner, dir_fd=parent_fd, follow_symlinks=False)
            except FileExistsError:  # a dangling symlink: let the next step resolve (and refuse) it
                os.close(_openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY))
            finally:
                os.close(parent_fd)
    finally:
        os.close(root_fd)
