"""Runtime classes: the names a container's isolation is chosen by, shared by the API, config and nodes."""

from __future__ import annotations

from typing import Literal

RuntimeName = Literal["runc", "gvisor"]
RUNTIME_CLASSES: tuple[RuntimeName, ...] = ("runc", "gvisor")
# Each tenant's user namespace maps this many ids (container 0..65535) onto its own host range.
ID_RANGE = 65536
