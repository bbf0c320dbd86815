"""A container's files as tar streams: copies into and out of its rootfs, its export, and its changes (the overlay upper dir).

Every read and write of the rootfs runs in seabox.node.archive_worker, a process chrooted into the
container's root, so nothing a tenant's archive or rootfs holds can reach outside it. Copies see the
container's volumes at their paths (VolumePaths), as the container does; an export does not, as in Docker.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from seabox.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge, RuntimeFailure, SeaboxError
from seabox.protocol.archive import Change, PathStat, UploadOptions

CHUNK = 1 << 20
_KINDS: dict[str, type[SeaboxError]] = {"not_found": NotFound, "invalid": InvalidArgument, "conflict": Conflict,
                                        "too_large": PayloadTooLarge}
MODIFIED, ADDED, DELETED = 0, 1, 2
# a volume as a copy mounts it: (path in the container, its data dir on this node, read-only)
VolumePaths = Sequence[tuple[str, Path, bool]]


def _failure(code: int | None, stderr: bytes) -> SeaboxError:
    for line in reversed(stderr.decode(errors="replace").splitlines()):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "kind" in item:
            return _KINDS.get(str(item["kind"]), RuntimeFailure)(str(item["message"]))
    return RuntimeFailure(f"archive worker ended with status {code}: {stderr.decode(errors='replace')[-300:]}")


async def _spawn(mode: str, root: Path, args: dict[str, object], stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "seabox.node.archive_worker", mode, str(root), json.dumps(args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PYTHONPATH": os.pathsep.join(sys.path), "PATH": "/usr/bin:/bin"},
    )


def _mounts(volumes: VolumePaths) -> list[list[object]]:
    return [[target, str(data), readonly] for target, data, readonly in volumes]


async def path_stat(root: Path, path: str, volumes: VolumePaths = ()) -> PathStat:
    """The stat of PATH inside the container whose root is ROOT (a symlink's own)."""
    proc = await _spawn("stat", root, {"path": path, "mounts": _mounts(volumes)})
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise _failure(proc.returncode, err)
    return PathStat.model_validate_json(out)


async def _output(proc: asyncio.subprocess.Process) -> AsyncIterator[bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
        code = await proc.wait()
        if code != 0:
            raise _failure(code, await errors)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.cancel()


async def read_tar(root: Path, path: str, id_base: int, volumes: VolumePaths = ()) -> AsyncIterator[bytes]:
    """PATH as a tar rebased on its own name (Docker's archive GET); owners shown as the container sees them."""
    await path_stat(root, path, volumes)  # a missing path fails here, before any byte is sent
    return _output(await _spawn("get", root, {"path": path, "base": id_base, "mounts": _mounts(volumes)}))


async def export_tar(root: Path, id_base: int) -> AsyncIterator[bytes]:
    """The container's whole root filesystem as a tar (`docker export`)."""
    return _output(await _spawn("export", root, {"base": id_base}))


async def upper_layer_tar(upper: Path, id_base: int) -> AsyncIterator[bytes]:
    """The container's changes (its overlay upper dir) as an OCI layer tar, whiteouts as `.wh.` entries."""
    return _output(await _spawn("layer", upper, {"base": id_base}))


async def write_tar(root: Path, path: str, data: AsyncIterator[bytes], id_base: int, options: UploadOptions,
                    volumes: VolumePaths = (), read_only_root: bool = False) -> None:
    """Unpack the tar DATA into directory PATH of the container; its disk size (or its volume's) bounds it.
    With READ_ONLY_ROOT (--read-only) only its writable volumes take files."""
    args = {"path": path, "base": id_base, "owner": options.owner, "no_overwrite_dir": options.no_overwrite_dir,
            "mounts": _mounts(volumes), "read_only_root": read_only_root}
    proc = await _spawn("put", root, args, stdin=True)
    assert proc.stdin is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        async for chunk in data:
            proc.stdin.write(chunk)
            try:
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):  # it stopped reading: its error says why
                break
        if not proc.stdin.is_closing():
            proc.stdin.close()
        code = await proc.wait()
        if code != 0:
            raise _failure(code, await errors)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.cancel()


def _in_lower(lower: Path, rel: str) -> bool:
    """Whether the image has REL, reached through real directories only (the image's symlinks are not followed)."""
    here = lower
    parts = rel.split("/")
    for i, part in enumerate(parts):
        here = here / part
        try:
            st = os.lstat(here)
        except OSError:
            return False
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return False
    return True


def changes(upper: Path, lower: Path) -> list[Change]:
    """What the container changed against its image, from its overlay upper dir (`docker diff`)."""
    found: list[Change] = []
    for top, dirs, files in os.walk(upper):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            full = os.path.join(top, name)
            rel = os.path.relpath(full, upper)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                found.append(Change(Path="/" + rel, Kind=DELETED))
            else:
                found.append(Change(Path="/" + rel, Kind=MODIFIED if _in_lower(lower, rel) else ADDED))
    return sorted(found, key=lambda c: c.Path)
