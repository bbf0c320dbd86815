"""Container network namespaces as files bind-mounted under one directory: create, test, list, remove."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from seabox.errors import RuntimeFailure

MNT_DETACH = 2
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def is_live(path: Path) -> bool:
    """Whether path is a mounted namespace (a stale plain file, e.g. after a reboot, is not)."""
    try:
        return path.stat().st_dev != path.parent.stat().st_dev
    except FileNotFoundError:
        return False


def _in_fresh_thread(work: Callable[[], T]) -> T:
    """Run WORK in a new thread and return its result: namespace changes die with that thread.

    A network namespace belongs to a thread, so unshare/setns in a throwaway thread never moves the
    server's own threads; no fork either (pyroute2's netns helpers fork, which is unsafe in a
    multi-threaded asyncio server).
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=run, name="seabox-netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _share_dir(directory: Path) -> None:
    """Make DIRECTORY a shared mount of itself (as `ip netns` does), so unmounts propagate to copies."""
    if _libc.mount(b"", str(directory).encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if _libc.mount(str(directory).encode(), str(directory).encode(), b"none", MS_BIND | MS_REC, None) != 0:
        raise RuntimeFailure(f"cannot bind-mount {directory}: {os.strerror(ctypes.get_errno())}")
    if _libc.mount(b"", str(directory).encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        raise RuntimeFailure(f"cannot make {directory} a shared mount: {os.strerror(ctypes.get_errno())}")


def _mount_point(path: Path) -> None:
    """A fresh empty file at path, in a shared directory, for a namespace to be bind-mounted on."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _share_dir(path.parent)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))


def create(path: Path) -> None:
    """Make path a new, empty network namespace; keep it if it already is one, replace a stale file."""
    if is_live(path):
        return
    _mount_point(path)

    def unshare_and_bind() -> None:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise RuntimeFailure(f"cannot create a network namespace: {os.strerror(ctypes.get_errno())}")
        if _libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none", MS_BIND, None) != 0:
            raise RuntimeFailure(f"cannot bind network namespace to {path}: {os.strerror(ctypes.get_errno())}")

    try:
        _in_fresh_thread(unshare_and_bind)
    except RuntimeFailure:
        path.unlink(missing_ok=True)
        raise


def adopt(path: Path, pid: int) -> None:
    """Make path name the network namespace of process pid (one its runtime created); idempotent.

    A runtime that puts the container in a user namespace must create the network namespace
    inside it (sysfs cannot be mounted otherwise); the node then configures it through this file.
    """
    source = f"/proc/{pid}/ns/net"
    try:
        wanted = os.stat(source).st_ino
    except FileNotFoundError:
        raise RuntimeFailure(f"process {pid} is gone: its network namespace cannot be adopted") from None
    if is_live(path):
        if path.stat().st_ino == wanted:
            return
        _umount(path)
    _mount_point(path)
    if _libc.mount(source.encode(), os.fsencode(path), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        path.unlink(missing_ok=True)
        raise RuntimeFailure(f"cannot bind network namespace of {pid} to {path}: {os.strerror(err)}")


def netlink_socket(path: Path) -> socket.socket:
    """A rtnetlink socket opened inside the namespace at PATH (it keeps that namespace for life)."""
    if not is_live(path):
        raise RuntimeFailure(f"network namespace {path} does not exist")

    def open_inside() -> socket.socket:
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise RuntimeFailure(f"cannot enter network namespace {path}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)

    return _in_fresh_thread(open_inside)


def remove(path: Path) -> None:
    """Unmount and delete the namespace file; nothing to do if it is gone."""
    if is_live(path):
        _umount(path)
    path.unlink(missing_ok=True)


def names(directory: Path) -> list[str]:
    """The namespace file names present in directory."""
    try:
        return sorted(entry.name for entry in directory.iterdir())
    except FileNotFoundError:
        return []


def release_dir(directory: Path) -> None:
    """Undo the directory's own bind mount and delete it once empty."""
    target = str(directory.resolve()) if directory.exists() else str(directory)
    while target in _mount_points():
        _umount(Path(target))
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise RuntimeFailure(f"cannot remove {directory}: {exc}") from exc


def _mount_points() -> set[str]:
    points: set[str] = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point, with spaces and such escaped as octal.
            raw = line.split(" ")[4]
            points.add(OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), raw))
    return points


def _umount(path: Path) -> None:
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"cannot unmount {path}: {os.strerror(err)}")
