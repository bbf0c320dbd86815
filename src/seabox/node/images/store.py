"""The node's image store: pulls, imports and builds images into one shared OCI layout, unpacks each image once, and saves them as archives."""

from __future__ import annotations

import asyncio
import builtins
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable, Set
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from seabox.config import RegistryConfig
from seabox.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    RuntimeFailure,
    SeaboxError,
    UpstreamError,
)
from seabox.model.runtime import ID_RANGE
from seabox.node.disk_usage import tree_bytes
from seabox.node.images.build import history_of, merge_archives, set_config
from seabox.node.images.layer_tar import decompress_layer, upper_to_layer
from seabox.node.images.layout import OciLayout, write_json_atomic
from seabox.model.reference import ImageRef, parse_reference
from seabox.node.images.registry import Source, allowed_internal, sources
from seabox.node.images.registry_hosts import Pin, admit, allowed_destinations
from seabox.node.network.pull_egress import PullEgress
from seabox.node.images.tools import ToolResult, run_tool
from seabox.protocol.images import HistoryEntry, ImageConfig, ImageInfo, NewImage, PullProgress

log = logging.getLogger(__name__)

_INDEX_VERSION = 1
_FULL_ID_RE = re.compile(r"sha256:[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")
_COPYING_BLOB_RE = re.compile(r"^Copying blob (sha256:[a-f0-9]{64})(.*)$")
_OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_PULL_REF = "image"
_DONE_POLL_SECONDS = 0.1
# The annotation containerd and `docker save` (v25+) use for an image's full name in an OCI index.
_CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"
_OCI_REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
_MAPPED_SEP = "@"  # unpacked/<ref>@<id base> holds a copy owned by one user namespace's host ids
# The layer scan runs in a child with this much address space: a tar header asking for more fails.
_SCAN_ADDRESS_SPACE = 1 << 30
_MAX_UNPACKED_KEY = "[disk] image_max_unpacked in config.toml"


@dataclass
class _Record:
    """What the store persists per image; tags and digests are kept apart."""

    manifest: dict[str, Any]  # the OCI descriptor of the manifest in the layout
    size: int
    created: str | None
    architecture: str
    os: str
    config: ImageConfig
    diff_ids: list[str] = field(default_factory=list)  # the config's rootfs.diff_ids (empty in older indexes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Record:
        return cls(**{**data, "config": ImageConfig(**data["config"])})


@dataclass(frozen=True)
class _ArchiveImage:
    """One image inside an archive: the skopeo source that names it and the tags it carries."""

    source: str
    tags: list[str]


class _KeyedLocks:
    """An asyncio lock per key, dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _layout_ref(image_id: str) -> str:
    return image_id.replace(":", "-")


def _parse_created(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _diff_ids(config: dict[str, Any]) -> builtins.list[str]:
    """The rootfs.diff_ids of an image config blob."""
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(d) for d in ids] if isinstance(ids, list) else []


def _bytes_text(n: int) -> str:
    """A byte count as an operator wrote it: '8 GiB', '64 MiB' or '1000 bytes'."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def too_large(what: str, limit: int) -> InvalidArgument:
    """The refusal of an image that would take more than the node's bound on unpacked bytes."""
    return InvalidArgument(
        f"{what} more than {_bytes_text(limit)}, this node's bound on an image's unpacked size "
        f"({_MAX_UNPACKED_KEY})",
        field="image",
    )


def _layer_sizes(source: Source, raw_manifest: bytes) -> dict[str, int]:
    """Layer digest -> size from a registry manifest (empty for a multi-platform index)."""
    try:
        manifest = json.loads(raw_manifest)
    except ValueError as exc:
        raise UpstreamError(f"registry {source.host} sent a manifest that is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise UpstreamError(f"registry {source.host} sent a manifest that is not a JSON object")
    return {
        str(layer.get("digest")): int(layer.get("size") or 0)
        for layer in manifest.get("layers") or []
        if isinstance(layer, dict)
    }


def _archive_tag(path: Path, name: str | None) -> list[str]:
    """The tag an OCI index entry carries; a bare ref name like 'latest' names no repository."""
    if not name or ("/" not in name and ":" not in name):
        return []
    try:
        return [parse_reference(name).name]
    except InvalidArgument as exc:
        raise InvalidArgument(f"archive {path} names an image {name!r}: {exc.message}") from exc


def _read_archive(path: Path) -> list[_ArchiveImage]:
    """List the images in a `docker save` tarball or an OCI archive, reading only its index files."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            docker_manifest = members.get("manifest.json")
            oci_index = members.get("index.json")
            chosen = docker_manifest or oci_index
            if chosen is None:
                raise InvalidArgument(f"{path} is neither a docker save archive nor an OCI archive")
            handle = tar.extractfile(chosen)
            assert handle is not None  # chosen is a regular file
            data = json.loads(handle.read())
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"cannot read image archive {path}: {exc}") from exc
    except ValueError as exc:
        raise InvalidArgument(f"image archive {path} has a malformed index: {exc}") from exc
    if docker_manifest is not None:
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise InvalidArgument(f"manifest.json of {path} is not a list of images")
        return [
            _ArchiveImage(
                source=f"docker-archive:{path}:@{i}",
                tags=[parse_reference(tag).name for tag in entry.get("RepoTags") or []],
            )
            for i, entry in enumerate(data)
        ]
    if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
        raise InvalidArgument(f"index.json of {path} is not an OCI image index")
    manifests = [m for m in data["manifests"] if isinstance(m, dict)]
    images = []
    for entry in manifests:
        annotations = entry.get("annotations") or {}
        ref_name = annotations.get(_OCI_REF_NAME_ANNOTATION)
        if ref_name:
            source = f"oci-archive:{path}:{ref_name}"
        elif len(manifests) == 1:
            source = f"oci-archive:{path}"
        else:
            raise InvalidArgument(
                f"OCI archive {path} holds {len(manifests)} images and one has no "
                f"{_OCI_REF_NAME_ANNOTATION} annotation to select it by"
            )
        name = annotations.get(_CONTAINERD_NAME_ANNOTATION) or ref_name
        images.append(_ArchiveImage(source=source, tags=_archive_tag(path, name)))
    return images


class ImageStore:
    """All images of one node, rooted at a directory that this process alone owns.

    Layout under root: oci/ (one OCI layout holding every blob; its refs are image ids),
    unpacked/<id>/rootfs (each image unpacked once), images.json (tags, digests, metadata),
    tmp/ (per-pull scratch layouts and skopeo's temporary files).
    """

    def __init__(
        self, root: Path, registries: RegistryConfig, *, egress: PullEgress, max_unpacked: int = 8 << 30
    ) -> None:
        if any(c in str(root) for c in ":,"):
            raise InvalidArgument(f"image store path {root} must not contain ':' or ','")
        self.root = root
        self.registries = registries
        self.egress = egress  # checks every connection a pull makes (where a registry redirects it)
        self.max_unpacked = max_unpacked  # bytes an image's layers may unpack to, summed
        self._layout = OciLayout(root / "oci")
        self._unpacked = root / "unpacked"
        self._tmp = root / "tmp"
        self._index_path = root / "images.json"
        self._images: dict[str, _Record] = {}
        self._tags: dict[str, str] = {}
        self._digests: dict[str, str] = {}
        self._ref_locks = _KeyedLocks()
        self._image_locks = _KeyedLocks()
        self._gc_lock = asyncio.Lock()
        self._writers = 0
        # Blobs of pulls that a crash interrupted are collected after the first write.
        self._gc_pending = True
        self._open()

    def _open(self) -> None:
        """Create the directories, load the index and repair whatever a crash left behind."""
        self._layout.ensure()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True)
        self._unpacked.mkdir(exist_ok=True)
        # An empty registries.conf: mirrors and credentials come from RegistryConfig alone.
        (self.root / "registries.conf").write_text("")
        if self._index_path.exists():
            data = json.loads(self._index_path.read_text())
            self._images = {k: _Record.from_json(v) for k, v in data["images"].items()}
            self._tags = dict(data["tags"])
            self._digests = dict(data["digests"])
        self._layout.set_refs({_layout_ref(i): r.manifest for i, r in self._images.items()})
        for image_id, record in self._images.items():
            if not record.diff_ids:  # recorded before the index kept them
                record.diff_ids = _diff_ids(self._layout.read_json_blob(image_id))
        keep = {_layout_ref(i) for i in self._images}
        for entry in self._unpacked.iterdir():
            if entry.name.partition(_MAPPED_SEP)[0] not in keep:
                shutil.rmtree(entry)

    def _save(self) -> None:
        write_json_atomic(
            self._index_path,
            {
                "version": _INDEX_VERSION,
                "images": {k: v.to_json() for k, v in self._images.items()},
                "tags": self._tags,
                "digests": self._digests,
            },
        )

    # ---- queries -------------------------------------------------------------------------

    def get(self, ref_or_id: str) -> ImageInfo:
        """Find an image by reference, full id or unique id prefix; NotFound otherwise."""
        image_id, _name = self._lookup(ref_or_id)
        return self._info(image_id)

    def list(self) -> builtins.list[ImageInfo]:
        """Every stored image, newest first."""
        infos = [self._info(i) for i in self._images]
        infos.sort(key=lambda info: info.id)
        infos.sort(key=lambda info: info.created.timestamp() if info.created else 0.0, reverse=True)
        return infos

    def _info(self, image_id: str) -> ImageInfo:
        record = self._images[image_id]
        return ImageInfo(
            id=image_id,
            digest=record.manifest["digest"],
            repo_tags=sorted(t for t, i in self._tags.items() if i == image_id),
            repo_digests=sorted(d for d, i in self._digests.items() if i == image_id),
            size=record.size,
            created=_parse_created(record.created),
            config=copy.deepcopy(record.config),
            architecture=record.architecture,
            os=record.os,
            layers=list(record.diff_ids),
        )

    def rootfs(self, image_id: str) -> Path:
        """The image's unpacked tree, owned by host root; use it only as a read-only lower layer."""
        return self._unpacked / _layout_ref(image_id) / "rootfs"

    def _lookup(self, ref_or_id: str) -> tuple[str, str | None]:
        """Resolve to (image id, the tag or digest name that matched, or None if matched by id)."""
        if _FULL_ID_RE.fullmatch(ref_or_id):
            if ref_or_id in self._images:
                return ref_or_id, None
            raise NotFound(f"no such image: {ref_or_id}")
        parse_error: InvalidArgument | None = None
        try:
            ref = parse_reference(ref_or_id)
        except InvalidArgument as exc:
            parse_error = exc
        else:
            key = f"{ref.repo}@{ref.digest}" if ref.digest else ref.name
            found = self._tags.get(key) or self._digests.get(key)
            if found is not None:
                return found, key
        prefix = _ID_PREFIX_RE.fullmatch(ref_or_id)
        if prefix is not None:
            matches = [i for i in self._images if i.removeprefix("sha256:").startswith(prefix[1])]
            if len(matches) == 1:
                return matches[0], None
            if matches:
                raise InvalidArgument(f"image id prefix {ref_or_id!r} matches {len(matches)} images")
        if parse_error is not None:
            raise parse_error
        raise NotFound(f"no such image: {ref_or_id}")

    # ---- pull and import -----------------------------------------------------------------

    async def pull(
        self, ref: str, progress: Callable[[PullProgress], None] | None = None
    ) -> ImageInfo:
        """Pull ref from its registry (mirrors first) and unpack it.

        The result names only what this pull gave the image (its tag and digest), not other tags.
        """
        image_ref = parse_reference(ref)

        def emit(event: PullProgress) -> None:
            if progress is not None:
                progress(event)

        async with self._ref_locks.hold(image_ref.name), self._writing():
            source, pin, raw_manifest = await self._resolve(image_ref, emit)
            remote_digest = image_ref.digest or "sha256:" + hashlib.sha256(raw_manifest).hexdigest()
            try:
                sizes = _layer_sizes(source, raw_manifest)
                if sum(sizes.values()) > self.max_unpacked:
                    raise too_large(f"image {image_ref.familiar} has compressed layers of", self.max_unpacked)
                descriptor = await self._copy(
                    source.image(image_ref, remote_digest),
                    source.flags("src-"),
                    on_blob=lambda digest, done: emit(
                        PullProgress(
                            status="done" if done else "downloading",
                            ref=image_ref.name,
                            layer=digest,
                            size=sizes.get(digest),
                        )
                    ),
                    error=lambda result: source.error(image_ref, result),
                    pin=pin,
                )
            finally:
                pin.release()
            tags = [] if image_ref.digest else [image_ref.name]
            digests = [f"{image_ref.repo}@{remote_digest}"]
            info = await self._register(
                descriptor,
                tags=tags,
                digests=digests,
                on_unpack=lambda: emit(PullProgress(status="unpacking", ref=image_ref.name)),
            )
        emit(PullProgress(status="complete", ref=image_ref.name, detail=info.id))
        return replace(info, repo_tags=tags, repo_digests=digests)

    async def import_archive(self, path: Path) -> builtins.list[ImageInfo]:
        """Import every image of a `docker save` tarball or an OCI archive; results carry the archive's tags only."""
        if any(c in str(path) for c in ":,"):
            raise InvalidArgument(f"archive path {path} must not contain ':' or ','")
        if not path.is_file():
            raise InvalidArgument(f"no such image archive: {path}")
        images = await asyncio.to_thread(_read_archive, path)
        infos = []
        async with self._writing():
            for image in images:
                descriptor = await self._copy(
                    image.source,
                    [],
                    on_blob=lambda digest, done: None,
                    error=lambda result: InvalidArgument(
                        f"cannot import image archive {path}: {result.reason}"
                    ),
                )
                info = await self._register(descriptor, tags=image.tags, digests=[], on_unpack=lambda: None)
                infos.append(replace(info, repo_tags=image.tags))
        return infos

    async def import_rootfs(self, tarball: Path, spec: NewImage) -> ImageInfo:
        """A new one-layer image whose filesystem is TARBALL (`docker import`; gzip, bzip2 or xz allowed)."""
        layer = self._tmp / f"import-{uuid.uuid4().hex}.tar"
        try:
            await asyncio.to_thread(decompress_layer, tarball, layer)
            return await self._build(None, layer, spec)
        finally:
            layer.unlink(missing_ok=True)

    async def commit(self, image_id: str, upper: Path, spec: NewImage) -> ImageInfo:
        """A new image: IMAGE_ID with the overlay upper dir UPPER (owned from the container's root up) as its top layer."""
        layer = self._tmp / f"commit-{uuid.uuid4().hex}.tar"
        try:
            await asyncio.to_thread(upper_to_layer, upper, layer, os.lstat(upper).st_uid)
            return await self._build(image_id, layer, spec)
        finally:
            layer.unlink(missing_ok=True)

    async def _build(self, base_id: str | None, layer: Path, spec: NewImage) -> ImageInfo:
        """Base image BASE_ID (or nothing) plus the uncompressed layer tarball LAYER, with SPEC's config, stored
        through the same copy, layer scan and unpack as a pull."""
        scratch = self._tmp / f"build-{uuid.uuid4().hex}"
        image = f"{scratch}:{_PULL_REF}"
        async with self._writing():
            try:
                if base_id is None:
                    steps = [["umoci", "init", "--layout", str(scratch)], ["umoci", "new", "--image", image]]
                else:
                    if base_id not in self._images:
                        raise NotFound(f"no such image: {base_id}")
                    source = f"oci:{self._layout.path}:{_layout_ref(base_id)}"
                    steps = [self._skopeo("copy", source, f"oci:{image}")]
                history = [f"--history.{k}={v}" for k, v in
                           (("comment", spec.comment), ("author", spec.author), ("created_by", spec.created_by)) if v]
                steps.append(["umoci", "raw", "add-layer", *history, "--image", image, str(layer)])
                for argv in steps:
                    result = await run_tool(argv, env=self._skopeo_env())
                    if not result.ok:
                        raise RuntimeFailure(f"cannot build the image: {result.reason}")
                await asyncio.to_thread(set_config, OciLayout(scratch), _PULL_REF, spec)
                descriptor = await self._copy(
                    f"oci:{image}", [], on_blob=lambda digest, done: None,
                    error=lambda result: RuntimeFailure(f"cannot store the image: {result.reason}"),
                )
                return await self._register(descriptor, tags=[], digests=[], on_unpack=lambda: None)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def history(self, image_id: str) -> builtins.list[HistoryEntry]:
        """The image's history, newest first, from its config and manifest."""
        if image_id not in self._images:
            raise NotFound(f"no such image: {image_id}")
        manifest = self._layout.read_json_blob(self._images[image_id].manifest["digest"])
        return history_of(manifest, self._layout.read_json_blob(image_id))

    async def save(self, images: builtins.list[tuple[str, builtins.list[str]]], out: Path) -> None:
        """Write one docker-archive at OUT holding each (image id, names to give it) of IMAGES, loadable by `docker load`."""
        parts: builtins.list[Path] = []
        async with self._writing():  # no blob is collected while skopeo reads them
            try:
                for image_id, names in images:
                    if image_id not in self._images:
                        raise NotFound(f"no such image: {image_id}")
                    parts.append(self._tmp / f"save-{uuid.uuid4().hex}.tar")
                    dest = f"docker-archive:{parts[-1]}" + (f":{names[0]}" if names else "")
                    extra = [f"--additional-tag={n}" for n in names[1:]]
                    argv = self._skopeo("copy", *extra, f"oci:{self._layout.path}:{_layout_ref(image_id)}", dest)
                    result = await run_tool(argv, env=self._skopeo_env())
                    if not result.ok:
                        raise RuntimeFailure(f"cannot save image {image_id[:19]}: {result.reason}")
                await asyncio.to_thread(merge_archives, parts, out)
            finally:
                for part in parts:
                    part.unlink(missing_ok=True)

    def _skopeo(self, *args: str) -> builtins.list[str]:
        # Seabox checks no image signatures, so skopeo needs no trust policy file on the host.
        return ["skopeo", "--insecure-policy", "--tmpdir", str(self._tmp), *args]

    async def _confined(self, pin: Pin, argv: builtins.list[str]) -> builtins.list[str]:
        """argv run in the pull cgroup (whose egress the node checks), resolving only pin's addresses."""
        allowed = await allowed_destinations(allowed_internal(self.registries))
        cgroup = await asyncio.to_thread(self.egress.ensure, allowed)
        return pin.command(argv, cgroup)

    def _skopeo_env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf")}

    async def _resolve(
        self, ref: ImageRef, emit: Callable[[PullProgress], None]
    ) -> tuple[Source, Pin, bytes]:
        """Fetch ref's manifest from the first host that may be reached and has it; raise the last host's error.

        The pin returned holds that host to the addresses checked (release it after the copy).
        """
        error: SeaboxError | None = None
        allowed = allowed_internal(self.registries)
        for source in sources(ref, self.registries):
            emit(PullProgress(status="resolving", ref=ref.name, detail=source.host))
            try:
                pin = await admit(source.host, allowed, self._tmp / f"hosts-{uuid.uuid4().hex}")
            except SeaboxError as exc:
                error = exc
                log.info("pull %s: %s", ref.name, exc.message)
                continue
            argv = self._skopeo("inspect", "--raw", *source.flags(""), source.image(ref))
            try:
                result = await run_tool(await self._confined(pin, argv), env=self._skopeo_env())
            except BaseException:
                pin.release()
                raise
            if result.ok:
                return source, pin, result.stdout
            pin.release()
            error = source.error(ref, result)
            log.info("pull %s: %s", ref.name, error.message)
        assert error is not None  # sources() always yields the registry itself
        raise error

    async def _copy(
        self,
        source: str,
        flags: builtins.list[str],
        *,
        on_blob: Callable[[str, bool], None],
        error: Callable[[ToolResult], SeaboxError],
        pin: Pin | None = None,
    ) -> dict[str, Any]:
        """Copy one image into a scratch layout whose blobs land in the shared layout.

        Returns the descriptor of the copied manifest. on_blob(digest, done) reports each layer as
        skopeo starts it and again once its blob is in place. A pin holds a registry source to the
        addresses that were checked.
        """
        scratch = self._tmp / f"copy-{uuid.uuid4().hex}"
        pending: set[str] = set()

        def finish(digests: set[str]) -> None:
            for digest in sorted(digests):
                pending.discard(digest)
                on_blob(digest, True)

        def on_line(line: str) -> None:
            match = _COPYING_BLOB_RE.match(line)
            if match is not None:
                on_blob(match[1], False)
                pending.add(match[1])
                if "skipped" in match[2] or "done" in match[2]:
                    finish({match[1]})
            elif line.startswith("Copying config"):
                finish(set(pending))  # skopeo copies the config once every layer is in

        async def watch() -> None:
            while True:
                await asyncio.sleep(_DONE_POLL_SECONDS)
                finish({d for d in pending if self._layout.blob_path(d).exists()})

        argv = self._skopeo(
            "copy",
            "--retry-times",
            "3",
            "--dest-shared-blob-dir",
            str(self._layout.blobs_dir),
            *flags,
            source,
            f"oci:{scratch}:{_PULL_REF}",
        )
        watcher = asyncio.create_task(watch())
        try:
            command = await self._confined(pin, argv) if pin is not None else argv
            result = await run_tool(command, env=self._skopeo_env(), on_line=on_line)
            if not result.ok:
                raise error(result)
            finish(set(pending))
            descriptor = OciLayout(scratch).refs().get(_PULL_REF)
        finally:
            watcher.cancel()
            shutil.rmtree(scratch, ignore_errors=True)
        if descriptor is None or descriptor.get("mediaType") != _OCI_MANIFEST_MEDIA_TYPE:
            raise RuntimeFailure(f"skopeo copy of {source} left no image manifest")
        return {k: descriptor[k] for k in ("mediaType", "digest", "size")}

    async def _register(
        self,
        descriptor: dict[str, Any],
        *,
        tags: builtins.list[str],
        digests: builtins.list[str],
        on_unpack: Callable[[], None],
    ) -> ImageInfo:
        """Record a copied manifest as an image (unpacking it if new) and point tags at it."""
        manifest = self._layout.read_json_blob(descriptor["digest"])
        image_id = str((manifest.get("config") or {}).get("digest", ""))
        if not _FULL_ID_RE.fullmatch(image_id):
            raise RuntimeFailure(f"manifest {descriptor['digest']} has no sha256 config digest")
        async with self._image_locks.hold(image_id):
            if image_id not in self._images:
                config = self._layout.read_json_blob(image_id)
                refs = self._layout.refs()
                self._layout.set_refs({**refs, _layout_ref(image_id): descriptor})
                try:
                    await self._check_unpacked(manifest)
                    on_unpack()
                    await self._unpack(image_id)
                    size = await asyncio.to_thread(tree_bytes, self.rootfs(image_id)) or 0
                except BaseException:
                    refs = self._layout.refs()
                    refs.pop(_layout_ref(image_id), None)
                    self._layout.set_refs(refs)
                    self._gc_pending = True  # its blobs go once the last pull or import is done
                    raise
                self._images[image_id] = _Record(
                    manifest=descriptor,
                    size=size,
                    created=config.get("created"),
                    architecture=str(config.get("architecture") or ""),
                    os=str(config.get("os") or ""),
                    config=ImageConfig.from_oci(config.get("config") or {}),
                    diff_ids=_diff_ids(config),
                )
            self._tags.update(dict.fromkeys(tags, image_id))
            self._digests.update(dict.fromkeys(digests, image_id))
            self._save()
            return self._info(image_id)

    async def _check_unpacked(self, manifest: dict[str, Any]) -> None:
        """Refuse (400) an image whose layers would unpack to more than max_unpacked, before unpacking."""
        layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
        blobs = [str(self._layout.blob_path(str(layer.get("digest")))) for layer in layers]
        argv = [
            "prlimit", f"--as={_SCAN_ADDRESS_SPACE}", "--",
            sys.executable, "-m", "seabox.node.images.layer_scan", str(self.max_unpacked), *blobs,
        ]  # fmt: skip
        result = await run_tool(argv)
        try:
            report = json.loads(result.stdout)
        except ValueError:  # the scan died on the image's data (its own limits, say)
            log.warning("layer scan failed: %s", result.stderr)
            raise InvalidArgument(f"image layers cannot be read: {result.reason}", field="image") from None
        if "error" in report:
            raise InvalidArgument(f"image layers cannot be read: {report['error']}", field="image")
        if report["over"]:
            raise too_large("image layers unpack to", self.max_unpacked)

    async def _unpack(self, image_id: str, id_base: int | None = None) -> Path:
        """Unpack the image into unpacked/<id>[@<id_base>] via a scratch directory renamed into place.

        With id_base the files' owners are shifted by it (uid and gid N become id_base + N), for a
        container whose user namespace maps its root to host uid id_base.
        """
        name = _layout_ref(image_id) if id_base is None else f"{_layout_ref(image_id)}{_MAPPED_SEP}{id_base}"
        final = self._unpacked / name
        if final.exists():
            return final / "rootfs"
        scratch = self._unpacked / f".tmp-{uuid.uuid4().hex}"
        scratch.mkdir()
        try:
            argv = ["umoci", "raw", "unpack", "--image", f"{self._layout.path}:{_layout_ref(image_id)}"]
            if id_base is not None:
                mapping = f"0:{id_base}:{ID_RANGE}"
                argv += ["--uid-map", mapping, "--gid-map", mapping]
            result = await run_tool([*argv, str(scratch / "rootfs")])
            if not result.ok:
                raise RuntimeFailure(f"cannot unpack image {image_id}: {result.reason}")
            os.rename(scratch, final)
        finally:
            if scratch.exists():
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        return final / "rootfs"

    async def mapped_rootfs(self, image_id: str, id_base: int) -> Path:
        """The image's rootfs owned by the host id range starting at id_base (unpacked once per range)."""
        async with self._image_locks.hold(image_id):
            if image_id not in self._images:
                raise NotFound(f"no such image: {image_id}")
            return await self._unpack(image_id, id_base)

    # ---- removal and garbage collection --------------------------------------------------

    async def remove(self, ref_or_id: str, in_use: Set[str] = frozenset()) -> None:
        """Untag ref_or_id; delete the image once no tag refers to it (Conflict if it is in use)."""
        image_id, name = self._lookup(ref_or_id)
        async with self._image_locks.hold(image_id):
            if image_id not in self._images:
                raise NotFound(f"no such image: {ref_or_id}")
            tags = {t for t, i in self._tags.items() if i == image_id}
            digests = {d for d, i in self._digests.items() if i == image_id}
            if name in tags:
                deleting = tags == {name}
            elif name in digests:
                deleting = not tags and digests == {name}
            else:
                deleting = True
            if deleting and image_id in in_use:
                raise Conflict(f"image {ref_or_id} ({image_id[7:19]}) is in use by a container")
            if not deleting:
                assert name is not None  # only a tag or digest name can leave the image in place
                self._tags.pop(name, None)
                self._digests.pop(name, None)
                self._save()
                return
            for key in tags:
                del self._tags[key]
            for key in digests:
                del self._digests[key]
            del self._images[image_id]
            refs = self._layout.refs()
            refs.pop(_layout_ref(image_id), None)
            self._layout.set_refs(refs)
            self._save()
            # every tree renamed away before the first await: once the image is out of the index, none of
            # its trees is left under its own name (a caller that finds the image gone may look)
            doomed = []
            for unpacked in list(self._unpacked.iterdir()):
                if unpacked.name.partition(_MAPPED_SEP)[0] == _layout_ref(image_id):
                    doomed.append(self._unpacked / f".del-{uuid.uuid4().hex}")
                    os.rename(unpacked, doomed[-1])
            for tree in doomed:
                await asyncio.to_thread(shutil.rmtree, tree, True)
        await self._collect_garbage()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Mark a pull or import in flight: blob garbage collection waits until none is."""
        async with self._gc_lock:
            self._writers += 1
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0 and self._gc_pending:
                await self._collect_garbage()

    async def _collect_garbage(self) -> None:
        """Delete blobs no stored image needs, now or (if pulls are in flight) after the last one."""
        async with self._gc_lock:
            if self._writers:
                self._gc_pending = True
                return
            result = await run_tool(["umoci", "gc", "--layout", str(self._layout.path)])
            self._gc_pending = not result.ok
            if not result.ok:
                log.warning("image blob garbage collection failed: %s", result.reason)
