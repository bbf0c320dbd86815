"""The container size table (Hyper.sh's sizes): memory, CPU share and CPU cores per size label."""

from __future__ import annotations

from dataclasses import dataclass

from seabox.errors import InvalidArgument

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Size:
    """One size: a hard memory limit, a relative CPU weight, a CPU time cap in cores, a process cap and
    the size of the container's own filesystem (what its writes to the rootfs may add up to).
    """

    name: str
    memory_bytes: int
    cpu_shares: int
    cpus: float
    pids: int
    disk_bytes: int


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("s1", 64 * MiB, 64, 1, 512, 10 * GiB),
        Size("s2", 128 * MiB, 128, 1, 512, 10 * GiB),
        Size("s3", 256 * MiB, 256, 1, 1024, 10 * GiB),
        Size("s4", 512 * MiB, 512, 1, 1024, 10 * GiB),
        Size("m1", 1 * GiB, 1024, 1, 2048, 20 * GiB),
        Size("m2", 2 * GiB, 2048, 2, 4096, 20 * GiB),
        Size("m3", 4 * GiB, 3072, 2, 4096, 20 * GiB),
        Size("l1", 4 * GiB, 4096, 4, 8192, 40 * GiB),
        Size("l2", 8 * GiB, 6144, 4, 16384, 40 * GiB),
        Size("l3", 16 * GiB, 8192, 8, 32768, 40 * GiB),
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


def check_size(name: str) -> str:
    """NAME lowercased if it names a size (a request field's validator: raises ValueError)."""
    if name.lower() not in SIZES:
        raise ValueError(f"unknown size {name!r}: use one of {', '.join(SIZES)}")
    return name.lower()


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
