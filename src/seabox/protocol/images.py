"""What a node reports about its images: pull progress, each stored image's metadata, config and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PullProgress:
    """One step of a pull, for a progress display.

    status is one of: resolving (detail = host asked), downloading and done (per layer, with its
    size when the manifest gives it), unpacking, complete (detail = the image id).
    """

    status: str
    ref: str
    layer: str | None = None
    size: int | None = None
    detail: str = ""


@dataclass
class ImageConfig:
    """The parts of an image's config that decide how its containers run."""

    env: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stop_signal: str = ""
    healthcheck: dict[str, Any] | None = None  # HEALTHCHECK, as the image config holds it (Docker's form)

    @classmethod
    def from_oci(cls, config: dict[str, Any]) -> ImageConfig:
        """Read the `config` object of an OCI (or Docker) image config blob."""
        return cls(
            env=list(config.get("Env") or []),
            cmd=list(config["Cmd"]) if config.get("Cmd") is not None else None,
            entrypoint=list(config["Entrypoint"]) if config.get("Entrypoint") is not None else None,
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            labels=dict(config.get("Labels") or {}),
            exposed_ports=sorted(config.get("ExposedPorts") or {}),
            volumes=sorted(config.get("Volumes") or {}),
            stop_signal=config.get("StopSignal") or "",
            healthcheck=config["Healthcheck"] if isinstance(config.get("Healthcheck"), dict) else None,
        )

    def to_oci(self) -> dict[str, Any]:
        """The `config` object of an OCI image config blob holding these values."""
        out: dict[str, Any] = {"Env": self.env, "Cmd": self.cmd, "Entrypoint": self.entrypoint,
                               "WorkingDir": self.working_dir, "User": self.user, "Labels": self.labels,
                               "ExposedPorts": {p: {} for p in self.exposed_ports},
                               "Volumes": {v: {} for v in self.volumes}, "StopSignal": self.stop_signal}
        return {k: v for k, v in out.items() if v not in (None, "", {}, [])}


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an image's history, newest first: the layer it made (if any) and how."""

    created: datetime | None
    created_by: str
    comment: str
    size: int  # bytes of the layer's blob; 0 for a step that made no layer
    empty_layer: bool


@dataclass(frozen=True)
class NewImage:
    """The config and history words of an image the node builds (an import or a commit)."""

    config: ImageConfig
    comment: str = ""
    author: str = ""
    created_by: str = ""


@dataclass
class ImageInfo:
    """One stored image as callers see it."""

    id: str  # 'sha256:<config digest>', as Docker's image ID
    digest: str  # digest of the manifest stored in the layout
    repo_tags: list[str]  # canonical names, e.g. docker.io/library/busybox:latest
    repo_digests: list[str]  # canonical repo@registry-manifest-digest, for images pulled from a registry
    size: int  # bytes of the unpacked rootfs
    created: datetime | None
    config: ImageConfig
    architecture: str
    os: str
    layers: list[str] = field(default_factory=list)  # rootfs.diff_ids of its config, bottom layer first
