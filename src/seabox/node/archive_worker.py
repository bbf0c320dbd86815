"""The chrooted process that reads and writes tar streams of a container's files, confined to its root as by chroot.

Run as `python -m seabox.node.archive_worker MODE ROOT ARGS_JSON` by seabox.node.archive: it chroots
into ROOT first, so `..`, absolute paths and symlinks (in the rootfs or in the archive) all resolve
inside it. The container's volumes (ARGS "mounts") are mounted at their paths in a mount namespace of
its own first: detached from the host before the chroot, attached inside it. Tar goes through stdout (reads) or stdin (writes); a failure is one JSON line
{"kind": "not_found" | "invalid" | "conflict", "message": ...} on stderr and exit status 1.
Owners are shifted by the container's host id base (its user namespace) both ways.
"""

from __future__ import annotations

import bz2
import ctypes
import gzip
import json
import lzma
import os
import stat
import sys
import tarfile
from datetime import UTC, datetime
from typing import Any

DECOMPRESSORS = (bz2, gzip, lzma)  # for compressed uploads: loaded before the chroot hides the stdlib
ID_RANGE = 65536  # seabox.model.runtime.ID_RANGE (this process imports nothing of seabox)
OVERFLOW_ID = 65534  # what the kernel shows for an id outside a user namespace's map
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

# Linux's mount API (the same numbers on every architecture since 5.2) and its flags
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x20000, 0x4000, 1 << 18
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH, AT_FDCWD = 1, 0x8000, 0x1000, -100
MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_RDONLY = 0x4, 0x1
_LIBC = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]

# Go's os.FileMode type bits, as Docker's X-Docker-Container-Path-Stat carries them
_GO_TYPES = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISBLK, 1 << 26), (stat.S_ISFIFO, 1 << 25),
             (stat.S_ISSOCK, 1 << 24), (stat.S_ISCHR, (1 << 26) | (1 << 21)))


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def go_mode(mode: int) -> int:
    bits = mode & 0o777
    for test, flag in _GO_TYPES:
        if test(mode):
            bits |= flag
    if mode & stat.S_ISUID:
        bits |= 1 << 23
    if mode & stat.S_ISGID:
        bits |= 1 << 22
    if mode & stat.S_ISVTX:
        bits |= 1 << 20
    return bits


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise Refused("not_found", f"Could not find the file {path} in container") from None
    except NotADirectoryError:
        raise Refused("invalid", f"{path}: a component of the path is not a directory") from None


def _resolved(path: str) -> str:
    """PATH with `..` folded; a trailing "/" or "/." asks for what a final symlink points at, as in Docker."""
    clean = os.path.normpath(path)
    return os.path.realpath(clean) if path.endswith(("/", "/.")) else clean


def path_stat(path: str) -> dict[str, Any]:
    """Docker's ContainerPathStat of PATH (a symlink's own, with the path it resolves to)."""
    clean = _resolved(path)
    st = _lstat(clean)
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(clean)
    mtime = datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z")
    return {"name": os.path.basename(clean) or "/", "size": st.st_size, "mode": go_mode(st.st_mode),
            "mtime": mtime, "linkTarget": target}


def _to_container(base: int) -> Any:
    def shift(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.uid - base if base <= info.uid < base + ID_RANGE else OVERFLOW_ID
        info.gid = info.gid - base if base <= info.gid < base + ID_RANGE else OVERFLOW_ID
        info.uname = info.gname = ""
        return info
    return shift


def write_tar(path: str, base: int) -> None:
    """PATH as Docker's archive GET sends it: rebased on its own name ("." for a trailing "/.")."""
    clean = _resolved(path)
    _lstat(clean)
    name = "." if path.endswith("/.") else os.path.basename(clean) or "."
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(clean, arcname=name, filter=_to_container(base))


def write_export(base: int) -> None:
    """The whole root filesystem, entries relative to it (`docker export`)."""
    shift = _to_container(base)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir("/")):
            tar.add("/" + entry, arcname=entry, filter=shift)


def _member_filter(dest: str, base: int, owner: tuple[int, int] | None, no_overwrite_dir: bool) -> Any:
    def check(member: tarfile.TarInfo, _path: str) -> tarfile.TarInfo:
        name = os.path.normpath(member.name.lstrip("/") or ".")
        if name.startswith("..") or (name == "." and not member.isdir()):
            raise Refused("invalid", f"archive member {member.name!r} is outside the target directory")
        if member.ischr() or member.isblk():
            raise Refused("invalid", f"archive member {member.name!r} is a device node: containers get devices from /dev")
        if member.islnk() and os.path.normpath(member.linkname.lstrip("/")).startswith(".."):
            raise Refused("invalid", f"archive member {member.name!r} links outside the target directory")
        uid, gid = owner if owner is not None else (member.uid, member.gid)
        if not (0 <= uid < ID_RANGE and 0 <= gid < ID_RANGE):
            raise Refused("invalid", f"archive member {member.name!r} has owner {uid}:{gid}, outside the container's "
                                     f"ids 0-{ID_RANGE - 1}")
        if no_overwrite_dir:
            try:
                existing = os.lstat(os.path.join(dest, name))
            except OSError:
                existing = None
            if existing is not None and stat.S_ISDIR(existing.st_mode) != member.isdir():
                what = "directory" if member.isdir() else "non-directory"
                raise Refused("conflict", f"cannot overwrite {name} in the container with a {what}")
        return member.replace(name=name, uid=uid + base, gid=gid + base, uname="", gname="", deep=False)
    return check


def read_tar(path: str, base: int, owner: tuple[int, int] | None, no_overwrite_dir: bool) -> None:
    """Unpack the tar on stdin into directory PATH (which must exist)."""
    dest = os.path.realpath(path)
    st = _lstat(dest)
    if not stat.S_ISDIR(st.st_mode):
        raise Refused("invalid", f"extraction point {path} is not a directory")
    check = _member_filter(dest, base, owner, no_overwrite_dir)
    try:
        with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as tar:
            for member in tar:
                tar.extract(member, dest, filter=check, numeric_owner=True)
    except tarfile.ReadError as exc:
        raise Refused("invalid", f"the body is not a tar archive: {exc}") from None
    except OSError as exc:
        if exc.errno == 28:
            raise Refused("too_large", "the disk is full: the archive does not fit the container's size, or the "
                                       "volume's it goes to") from None
        raise Refused("invalid", f"cannot unpack the archive: {exc.strerror}: {exc.filename or ''}") from None


def write_layer(base: int) -> None:
    """An overlay upper dir (this root) as an OCI layer tar: whiteout devices become `.wh.NAME`, opaque dirs
    carry `.wh..wh..opq`."""
    shift = _to_container(base)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk("/"):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(top, name)
                rel = full.lstrip("/")
                st = os.lstat(full)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    info = shift(tarfile.TarInfo(os.path.join(os.path.dirname(rel), WHITEOUT + name)))
                    tar.addfile(info)
                    continue
                tar.add(full, arcname=rel, recursive=False, filter=shift)
                if stat.S_ISDIR(st.st_mode) and _opaque(full):
                    tar.addfile(shift(tarfile.TarInfo(os.path.join(rel, OPAQUE))))


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _checked(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _read_only(fd: int, path: bytes, what: str, recursive: bool = True) -> None:
    attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    flags = (AT_EMPTY_PATH if not path else 0) | (AT_RECURSIVE if recursive else 0)
    _checked(_LIBC.syscall(SYS_MOUNT_SETATTR, fd, path, flags, ctypes.byref(attr), ctypes.sizeof(attr)), what)


def detach_volumes(mounts: list[list[Any]]) -> list[tuple[str, int]]:
    """Each volume [TARGET, HOST_DIR, READONLY] as a detached copy of its mount (read-only where asked), in a
    mount namespace of this process's own whose mounts never reach the host's; before the chroot."""
    _checked(_LIBC.unshare(CLONE_NEWNS), "unshare")
    _checked(_LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    trees = []
    for target, source, readonly in sorted(mounts, key=lambda m: len(os.path.normpath(m[0]))):
        fd = _checked(_LIBC.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(source),
                                    OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC), f"open_tree {target}")
        if readonly:
            _read_only(fd, b"", f"read-only {target}")
        trees.append((str(target), fd))
    return trees


def attach_volumes(trees: list[tuple[str, int]], read_only_root: bool) -> None:
    """Mount each detached volume at its path inside the chroot, shallowest first: the path is made if it is
    missing (as the runtime does when the container starts) and resolved inside the root like any other;
    then the root (a mount point of its own) is made read-only for a --read-only container, its volumes not."""
    for target, fd in trees:
        where = os.path.realpath(target)
        try:
            os.makedirs(where, exist_ok=True)
        except OSError as exc:
            raise Refused("invalid", f"the volume mount point {target} cannot be made: {exc.strerror}") from None
        if not os.path.isdir(where):
            raise Refused("invalid", f"the volume mount point {target} is not a directory in the container")
        try:
            _checked(_LIBC.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, os.fsencode(where), MOVE_MOUNT_F_EMPTY_PATH),
                     f"mount the volume at {target}")
        finally:
            os.close(fd)
    if read_only_root:
        _read_only(AT_FDCWD, b"/", "make the root read-only", recursive=False)


def main(argv: list[str]) -> int:
    mode, root, raw = argv
    args: dict[str, Any] = json.loads(raw)
    mounts, read_only_root = args.get("mounts", []), bool(args.get("read_only_root"))
    trees = detach_volumes(mounts) if mounts or read_only_root else []
    os.chroot(root)
    os.chdir("/")
    base = int(args.get("base", 0))
    try:
        attach_volumes(trees, read_only_root)
        if mode == "stat":
            sys.stdout.write(json.dumps(path_stat(args["path"])))
        elif mode == "get":
            write_tar(args["path"], base)
        elif mode == "put":
            owner = tuple(args["owner"]) if args.get("owner") else None
            read_tar(args["path"], base, owner, bool(args.get("no_overwrite_dir")))  # type: ignore[arg-type]
        elif mode == "export":
            write_export(base)
        elif mode == "layer":
            write_layer(base)
        else:
            raise Refused("invalid", f"unknown mode {mode}")
    except (Refused, tarfile.FilterError) as exc:
        kind = exc.kind if isinstance(exc, Refused) else "invalid"
        sys.stderr.write(json.dumps({"kind": kind, "message": str(exc)}) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
