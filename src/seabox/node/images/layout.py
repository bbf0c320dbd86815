"""One OCI image layout on disk: its index.json refs, its content-addressed blobs, and atomic JSON writes."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from seabox.errors import RuntimeFailure

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write data as JSON so that readers see either the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class OciLayout:
    """An OCI image layout directory (oci-layout, index.json, blobs/<algorithm>/<hex>)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def blobs_dir(self) -> Path:
        return self.path / "blobs"

    def ensure(self) -> None:
        """Create an empty layout unless one is already there."""
        (self.blobs_dir / "sha256").mkdir(parents=True, exist_ok=True)
        if not (self.path / "oci-layout").exists():
            write_json_atomic(self.path / "oci-layout", {"imageLayoutVersion": "1.0.0"})
        if not (self.path / "index.json").exists():
            self._write_index([])

    def blob_path(self, digest: str) -> Path:
        """Where the blob with this digest lives; the digest is checked, as it comes from image data."""
        if _DIGEST_RE.fullmatch(digest) is None:
            raise RuntimeFailure(f"malformed content digest {digest!r} in image data")
        algorithm, _, encoded = digest.partition(":")
        return self.blobs_dir / algorithm / encoded

    def read_json_blob(self, digest: str) -> dict[str, Any]:
        """Parse a JSON blob (a manifest or an image config)."""
        path = self.blob_path(digest)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise RuntimeFailure(f"blob {digest} is missing from {self.path}") from exc
        except ValueError as exc:
            raise RuntimeFailure(f"blob {digest} in {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise RuntimeFailure(f"blob {digest} in {self.path} is not a JSON object")
        return data

    def refs(self) -> dict[str, dict[str, Any]]:
        """Map each ref name in index.json to its manifest descriptor."""
        index = json.loads((self.path / "index.json").read_text())
        found: dict[str, dict[str, Any]] = {}
        for descriptor in index.get("manifests") or []:
            name = (descriptor.get("annotations") or {}).get(REF_NAME_ANNOTATION)
            if name:
                found[name] = descriptor
        return found

    def set_refs(self, refs: dict[str, dict[str, Any]]) -> None:
        """Replace index.json so that it holds exactly these ref names and descriptors."""
        manifests = []
        for name, descriptor in sorted(refs.items()):
            annotations = {**(descriptor.get("annotations") or {}), REF_NAME_ANNOTATION: name}
            manifests.append({**descriptor, "annotations": annotations})
        self._write_index(manifests)

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
        write_json_atomic(self.path / "index.json", index)
