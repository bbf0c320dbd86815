"""Host-side ownership and modes of the node's data dir: root-only trees, and traverse-only paths for user namespaces."""

from __future__ import annotations

import os
from pathlib import Path

# Directories every container's user namespace must be able to walk through (runc resolves the
# rootfs and bind-mount sources as the container's root, an unprivileged host uid): x only.
TRAVERSE_ONLY = 0o711
# Everything else is root's alone.
ROOT_ONLY = 0o700
# A directory that one tenant's mapped root may enter (group = its host gid), nobody else.
TENANT_ENTRY = 0o710
_TRAVERSED = ("containers", "tenants", "volumes")
_PRIVATE = ("images", "disk-templates")


def secure_data_dir(data_dir: Path) -> None:
    """Create the data dir's top level with its modes, and repair them if someone loosened them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, TRAVERSE_ONLY)
    for name in _TRAVERSED:
        (data_dir / name).mkdir(exist_ok=True)
        os.chmod(data_dir / name, TRAVERSE_ONLY)
    for name in _PRIVATE:
        (data_dir / name).mkdir(exist_ok=True)
        os.chmod(data_dir / name, ROOT_ONLY)


def make_private_dir(path: Path, id_base: int | None) -> None:
    """Create path (parents traverse-only) for one container or tenant: enterable by root and, when
    id_base is given, by that user namespace's root group; by no other host user."""
    for parent in reversed(path.parents):
        if not parent.exists():
            parent.mkdir(mode=TRAVERSE_ONLY)
    path.mkdir(exist_ok=True)
    if id_base is None:
        os.chown(path, 0, 0)
        os.chmod(path, ROOT_ONLY)
    else:
        os.chown(path, 0, id_base)
        os.chmod(path, TENANT_ENTRY)


def hand_over(path: Path, id_base: int | None) -> None:
    """Give a still root-owned directory (a new volume's root) to the user namespace's root."""
    if id_base is None:
        return
    st = os.lstat(path)
    if st.st_uid == 0 and st.st_gid == 0:
        os.chown(path, id_base, id_base, follow_symlinks=False)
