"""What crosses the node protocol about a container's files: a path's stat, upload options, and its changes."""

from __future__ import annotations

from pydantic import BaseModel


class PathStat(BaseModel):
    """Docker's ContainerPathStat (the X-Docker-Container-Path-Stat header): mode in Go's os.FileMode bits."""

    name: str
    size: int
    mode: int
    mtime: str
    linkTarget: str = ""  # noqa: N815 (Docker's spelling on the wire)


class UploadOptions(BaseModel):
    """How an archive is unpacked into a container: owner forces every file's uid:gid (container ids);
    no_overwrite_dir refuses to replace a directory with a non-directory or the reverse."""

    owner: tuple[int, int] | None = None
    no_overwrite_dir: bool = False


class Change(BaseModel):
    """One path the container changed against its image: Kind 0 modified, 1 added, 2 deleted (as `docker diff`)."""

    Path: str  # noqa: N815
    Kind: int  # noqa: N815
