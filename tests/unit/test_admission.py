"""Admission control as a pure function: sizes that never fit, sizes that do not fit now, overcommit."""

from __future__ import annotations

from seabox.model.node import NodeCapacity
from seabox.model.sizes import GiB, MiB, SIZES
from seabox.scheduler.admission import refusal

HOST = NodeCapacity("local", int(23.4 * GiB), 2)


def test_a_size_with_more_cpus_than_the_node_never_fits() -> None:
    assert refusal(SIZES["l3"], HOST, 1.0) == (
        "size l3 needs 16 GiB of memory and 8 CPUs; node local has 23.4 GiB and 2 CPUs (23.4 GiB free)"
    )
    assert refusal(SIZES["m3"], HOST, 1.0) is None  # 4 GiB, 2 CPUs


def test_a_size_with_more_memory_than_the_node_never_fits_even_with_overcommit() -> None:
    small = NodeCapacity("n1", 3 * GiB, 8)
    assert refusal(SIZES["l1"], small, 4.0) is not None  # 4 GiB on a 3 GiB node: one container cannot
    assert refusal(SIZES["m3"], small, 4.0) is not None
    assert refusal(SIZES["m2"], small, 4.0) is None


def test_free_memory_counts_the_allocated_and_the_message_says_what_is_free() -> None:
    node = NodeCapacity("local", 23 * GiB + 400 * MiB, 8)
    allocated = 8 * GiB + 300 * MiB
    assert refusal(SIZES["l3"], node, 1.0, allocated) == (
        "size l3 needs 16 GiB of memory and 8 CPUs; node local has 23.4 GiB and 8 CPUs (15.1 GiB free)"
    )
    assert refusal(SIZES["l2"], node, 1.0, allocated) is None
    assert refusal(SIZES["l3"], node, 1.0) is None  # at create only "can it ever fit" is asked


def test_overcommit_scales_what_may_be_allocated() -> None:
    node = NodeCapacity("local", 1 * GiB, 2)
    assert refusal(SIZES["s4"], node, 1.0, 512 * MiB) is None
    assert refusal(SIZES["s4"], node, 1.0, 513 * MiB) is not None
    assert refusal(SIZES["s4"], node, 2.0, 1536 * MiB) is None
    half = refusal(SIZES["s4"], node, 0.5, 256 * MiB)
    assert half == (
        "size s4 needs 512 MiB of memory and 1 CPU; node local has 1 GiB (512 MiB at memory overcommit 0.5) "
        "and 2 CPUs (256 MiB free)"
    )
    assert refusal(SIZES["m1"], node, 0.5) is not None  # more than may ever be allocated
    assert refusal(SIZES["s4"], node, 1.0, 4 * GiB) is not None  # already overcommitted: free is 0
