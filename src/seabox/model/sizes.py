"""The container size table (Hyper.sh's sizes): memory, CPU share and CPU cores per size label."""

from __future__ import annotations

from dataclasses import dataclass

from seabox.errors import InvalidArgument

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Size:
    """One size: a hard memory limit, a relative CPU weight, a CPU time cap in cores and a process cap."""

    name: str
    memory_bytes: int
    cpu_shares: int
    cpus: float
    pids: int


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("s1", 64 * MiB, 64, 1, 512),
        Size("s2", 128 * MiB, 128, 1, 512),
        Size("s3", 256 * MiB, 256, 1, 1024),
        Size("s4", 512 * MiB, 512, 1, 1024),
        Size("m1", 1 * GiB, 1024, 1, 2048),
        Size("m2", 2 * GiB, 2048, 2, 4096),
        Size("m3", 4 * GiB, 3072, 2, 4096),
        Size("l1", 4 * GiB, 4096, 4, 8192),
        Size("l2", 8 * GiB, 6144, 4, 16384),
        Size("l3", 16 * GiB, 8192, 8, 32768),
    )
}
DEFAULT_SIZE = "s4"


def get_size(name: str) -> Size:
    """The size called NAME, or a 400 listing the valid ones."""
    try:
        return SIZES[name.lower()]
    except KeyError:
        raise InvalidArgument(
            f"unknown size {name!r}: use one of {', '.join(SIZES)}", field="size"
        ) from None


def smallest_fitting(memory_bytes: int, cpus: float = 0) -> Size:
    """The smallest size with at least MEMORY_BYTES and CPUS (Docker's --memory and --cpus map to this)."""
    for size in SIZES.values():
        if size.memory_bytes >= memory_bytes and size.cpus >= cpus:
            return size
    largest = list(SIZES.values())[-1]
    raise InvalidArgument(
        f"{memory_bytes} bytes of memory and {cpus:g} CPUs exceed the largest size {largest.name} "
        f"({largest.memory_bytes // GiB} GiB, {largest.cpus:g} CPUs)",
        field="memory" if memory_bytes > largest.memory_bytes else "cpus",
    )
