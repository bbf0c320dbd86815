"""Image documents the node writes or reads for itself: a built image's config and manifest, its history, and one docker-archive of several images."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seabox.node.images.layout import OciLayout
from seabox.protocol.images import HistoryEntry, NewImage

OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_ARCHIVE_MANIFEST = "manifest.json"
_ARCHIVE_REPOSITORIES = "repositories"


def _write_blob(layout: OciLayout, data: dict[str, Any]) -> tuple[str, int]:
    raw = json.dumps(data, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    layout.blob_path(digest).write_bytes(raw)
    return digest, len(raw)


def set_config(layout: OciLayout, ref: str, spec: NewImage) -> None:
    """Give the image REF of LAYOUT (one the node made) SPEC's config, author and creation time: a new config blob and manifest."""
    descriptor = layout.refs()[ref]
    manifest = layout.read_json_blob(descriptor["digest"])
    config = layout.read_json_blob(manifest["config"]["digest"])
    config["config"] = spec.config.to_oci()
    config["created"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if spec.author:
        config["author"] = spec.author
    config_digest, config_size = _write_blob(layout, config)
    manifest["config"] = {"mediaType": OCI_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size}
    digest, size = _write_blob(layout, manifest)
    layout.set_refs({ref: {"mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": digest, "size": size}})


def _created(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def history_of(manifest: dict[str, Any], config: dict[str, Any]) -> list[HistoryEntry]:
    """The image's history, newest first: each config history step, with the size of the layer it made."""
    sizes = [int(layer.get("size") or 0) for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
    steps = [h for h in config.get("history") or [] if isinstance(h, dict)]
    out: list[HistoryEntry] = []
    layer = 0
    for step in steps:
        empty = bool(step.get("empty_layer"))
        size = 0 if empty or layer >= len(sizes) else sizes[layer]
        layer += 0 if empty else 1
        out.append(HistoryEntry(_created(step.get("created")), str(step.get("created_by") or ""),
                                str(step.get("comment") or ""), size, empty))
    out += [HistoryEntry(_created(config.get("created")), "", "", size, False) for size in sizes[layer:]]
    return out[::-1]


def merge_archives(parts: list[Path], out: Path) -> None:
    """Write one docker-archive at OUT holding the images of the single-image docker-archives PARTS
    (written by skopeo from the node's own store): their files once each, and one manifest.json."""
    manifest: list[Any] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(out, "w") as dst:
        for part in parts:
            with tarfile.open(part, "r:") as src:
                for member in src.getmembers():
                    handle = src.extractfile(member) if member.isfile() else None
                    if member.name == _ARCHIVE_MANIFEST and handle is not None:
                        manifest += json.loads(handle.read())
                    elif member.name == _ARCHIVE_REPOSITORIES and handle is not None:
                        for repo, tags in json.loads(handle.read()).items():
                            repositories.setdefault(repo, {}).update(tags)
                    elif member.name not in written:
                        written.add(member.name)
                        dst.addfile(member, handle)
        for name, data in ((_ARCHIVE_MANIFEST, manifest), (_ARCHIVE_REPOSITORIES, repositories)):
            raw = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o644
            dst.addfile(info, io.BytesIO(raw))
