"""Container network namespaces as files bind-mounted under one directory: create, test, list, remove."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
from pathlib import Path

from pyroute2 import netns as pr_netns

from seabox.errors import RuntimeFailure

MNT_DETACH = 2
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def is_live(path: Path) -> bool:
    """Whether path is a mounted namespace (a stale plain file, e.g. after a reboot, is not)."""
    try:
        return path.stat().st_dev != path.parent.stat().st_dev
    except FileNotFoundError:
        return False


def create(path: Path) -> None:
    """Make path a new, empty network namespace; keep it if it already is one, replace a stale file."""
    if is_live(path):
        return
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # pyroute2 marks the directory a shared mount (as `ip netns` does), so an unmount here also
        # reaches copies of it in mount namespaces created later, then unshares in a child and binds.
        pr_netns.create(str(path))
    except OSError as exc:
        raise RuntimeFailure(f"cannot create network namespace {path}: {exc}") from exc


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
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"cannot unmount {path}: {os.strerror(err)}")
