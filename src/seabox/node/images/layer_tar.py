"""Writing OCI layer tarballs on the node: a container's overlay upper dir as a layer (whiteouts and owners translated), and a tenant's import tarball decompressed.

Nothing here unpacks a tar: the layers written are unpacked later by umoci, after the layer scan.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import tarfile
from pathlib import Path

from seabox.errors import InvalidArgument
from seabox.model.runtime import ID_RANGE

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_NOBODY = 65534
_MAGIC: list[tuple[bytes, str]] = [(b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz")]


def _opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _owner(host_id: int, id_base: int) -> int:
    """A host uid or gid as the container saw it (ids outside its range read as nobody, as in the container)."""
    return host_id - id_base if id_base <= host_id < id_base + ID_RANGE else _NOBODY


def upper_to_layer(upper: Path, out: Path, id_base: int) -> None:
    """Write the changes in overlay upper dir UPPER as an uncompressed OCI layer tarball at OUT.

    A whiteout (a 0/0 character device) becomes an empty `.wh.NAME`, an opaque directory gets a
    `.wh..wh..opq` entry, owners are shifted back by ID_BASE (the host uid that is root in the
    container); symlinks are stored as links, never followed. Sockets and device nodes are left out
    (the rootfs is mounted nodev, and a container cannot make either for an image).
    """
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(upper):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, upper)
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                _add(tar, os.path.join(dirpath, name), os.path.normpath(os.path.join(rel_dir, name)), id_base)
            for name in dirnames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    continue
                arcname = os.path.normpath(os.path.join(rel_dir, name))
                _add(tar, full, arcname, id_base)
                if _opaque(full):
                    marker = tarfile.TarInfo(f"{arcname}/{OPAQUE_MARKER}")
                    tar.addfile(marker)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _add(tar: tarfile.TarFile, path: str, arcname: str, id_base: int) -> None:
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        head, tail = os.path.split(arcname)
        tar.addfile(tarfile.TarInfo(os.path.join(head, WHITEOUT_PREFIX + tail)))
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
            or stat.S_ISFIFO(st.st_mode)):
        return
    info = tar.gettarinfo(path, arcname)
    info.uid, info.gid = _owner(st.st_uid, id_base), _owner(st.st_gid, id_base)
    info.uname = info.gname = ""
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def decompress_layer(src: Path, out: Path) -> None:
    """Copy the tarball SRC to OUT uncompressed (it may be gzip, bzip2 or xz, as `docker import` allows)."""
    with src.open("rb") as raw:
        head = raw.read(6)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind or "", open)
    try:
        with opener(src, "rb") as f, out.open("wb") as dst:
            shutil.copyfileobj(f, dst, 1 << 20)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InvalidArgument(f"the import tarball cannot be decompressed ({kind}): {exc}", field="fromSrc") from exc
