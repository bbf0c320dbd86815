"""A live container's limits following its spec's size (node/limits.py), with a runtime that records what it is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seabox.errors import Conflict
from seabox.node import limits
from seabox.node.runtime.base import Limits
from tests.unit.test_converger import spec


class Runtime:
    def __init__(self, refuse: bool = False) -> None:
        self.updates: list[Limits] = []
        self.refuse = refuse

    async def update(self, cid: str, caps: Limits) -> None:
        if self.refuse:
            raise Conflict("cannot set memory limit: device or resource busy")
        self.updates.append(caps)


async def test_a_new_size_is_set_once_and_recorded_and_a_refusal_keeps_the_old(tmp_path: Path) -> None:
    runtime: Any = Runtime()
    # started by an agent that kept no record: it has its spec's size, nothing to set
    assert await limits.converge(runtime, tmp_path, "c", spec(size="s1")) == ("s1", "")
    assert runtime.updates == [] and limits.applied(tmp_path) == "s1"
    assert await limits.converge(runtime, tmp_path, "c", spec(size="m1")) == ("m1", "")
    assert runtime.updates == [Limits(1 << 30, 1024, 1, 2048)] and limits.applied(tmp_path) == "m1"
    assert await limits.converge(runtime, tmp_path, "c", spec(size="m1")) == ("m1", "")  # level-triggered: once
    assert len(runtime.updates) == 1
    refusing: Any = Runtime(refuse=True)
    size, error = await limits.converge(refusing, tmp_path, "c", spec(size="s1"))
    assert (size, limits.applied(tmp_path)) == ("m1", "m1") and "busy" in error


def test_gvisor_gets_room_for_its_sandbox_processes_and_a_lower_pids_limit_wins() -> None:
    assert limits.limits_of(spec(size="s1", pids_limit=100)).pids == 100
    gvisor = spec(size="s1").model_copy(update={"runtime_class": "gvisor"})
    assert limits.limits_of(gvisor).pids == limits.gvisor_host_pids(512)
