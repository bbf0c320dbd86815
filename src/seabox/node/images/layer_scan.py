"""What an image's layers would take on disk once unpacked, summed from the layer tars' own headers.

Run as a child process (`python -m seabox.node.images.layer_scan LIMIT BLOB...`, under an address
space limit, since a hostile tar header can ask tarfile for any amount of memory): it streams each
layer blob through gzip and tarfile (which knows the real size of PAX and GNU sparse members;
gzip is undone by gzip.GzipFile, which inflates in bounded steps, not by tarfile), stops as soon as the total passes LIMIT, and prints one JSON object: {"total": BYTES,
"over": BOOL} or {"error": TEXT}.
"""

from __future__ import annotations

import gzip
import json
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

# Every entry costs at least one filesystem block, so a layer of a million empty files counts too.
BLOCK = 4096
_BUFSIZE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsupportedLayer(Exception):
    """A layer compressed in a way the unpacker cannot read."""


def _decompressed(raw: BinaryIO) -> BinaryIO:
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if magic == _ZSTD_MAGIC:
        raise UnsupportedLayer("zstd-compressed layers are not supported (umoci cannot unpack them)")
    return raw


def entry_cost(size: int) -> int:
    """Bytes an entry of SIZE bytes is counted as: its size in whole blocks, at least one block."""
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def unpacked_total(blobs: list[Path], limit: int) -> tuple[int, bool]:
    """(bytes counted, whether that passed LIMIT); stops reading at the first entry past LIMIT."""
    total = 0
    for blob in blobs:
        with blob.open("rb") as raw, tarfile.open(fileobj=_decompressed(raw), mode="r|", bufsize=_BUFSIZE) as tar:
            while (member := tar.next()) is not None:
                total += entry_cost(member.size)
                if total > limit:
                    return total, True
                tar.members = []  # a stream needs no index of what went by; keep memory flat
    return total, False


def main(argv: list[str]) -> None:
    limit, blobs = int(argv[0]), [Path(a) for a in argv[1:]]
    try:
        total, over = unpacked_total(blobs, limit)
    except UnsupportedLayer as exc:
        print(json.dumps({"error": str(exc)}))
        return
    except (tarfile.TarError, OSError, EOFError, ValueError, MemoryError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    print(json.dumps({"total": total, "over": over}))


if __name__ == "__main__":
    main(sys.argv[1:])
