"""Published ports: a container port reachable from outside on the container's floating IP, and their parsing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PORTS = 32  # published ports of one container (a range counts each of its ports)
Protocol = Literal["tcp", "udp"]
PROTOCOLS: tuple[Protocol, ...] = ("tcp", "udp")


class PortMapping(BaseModel):
    """One published port: FIP_PORT on the container's floating IP goes to CONTAINER_PORT (one port; ranges expand)."""

    model_config = ConfigDict(extra="forbid")

    container_port: int = Field(ge=1, le=65535)
    fip_port: int = Field(ge=1, le=65535)
    protocol: Protocol = "tcp"

    def __str__(self) -> str:
        return f"{self.fip_port}:{self.container_port}/{self.protocol}"


def _port_range(text: str, what: str) -> range:
    """'80' or '8000-8010' as the ports it names (ValueError naming WHAT when it is not 1 to 65535)."""
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise ValueError(f"{what} must be a port or a range like 8000-8010, got {text!r}")
    first, last = int(low), int(high) if sep else int(low)
    if not 1 <= first <= 65535 or not 1 <= last <= 65535:
        raise ValueError(f"{what} must be from 1 to 65535, got {text!r}")
    if first > last:
        raise ValueError(f"{what} range must go from low to high, got {text!r}")
    return range(first, last + 1)


def protocol_of(text: str, spec: str) -> Protocol:
    """'tcp' or 'udp' ('' is tcp); anything else is a ValueError quoting SPEC."""
    name = text.lower() or "tcp"
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be tcp or udp, got {text!r} in {spec!r}")
    return name  # type: ignore[return-value]


def parse_ports(spec: str) -> list[PortMapping]:
    """'[FIP_PORT:]CONTAINER_PORT[/tcp|udp]', each side a port or a range of the same length, as mappings."""
    ports, _, proto = spec.strip().partition("/")
    protocol = protocol_of(proto, spec)
    fip_text, sep, container_text = ports.rpartition(":")
    if not sep:
        fip_text = container_text
    if ":" in fip_text:
        raise ValueError(f"published ports are [FIP_PORT:]CONTAINER_PORT[/tcp|udp], got {spec!r}: a host address "
                         "cannot be given, ports are published on the container's floating IP")
    container = _port_range(container_text, "container port")
    fip = _port_range(fip_text, "floating IP port")
    if len(fip) != len(container):
        raise ValueError(f"the port ranges of {spec!r} differ in length ({len(fip)} and {len(container)})")
    return [PortMapping(container_port=c, fip_port=f, protocol=protocol) for f, c in zip(fip, container, strict=True)]


def check_ports(ports: list[PortMapping]) -> list[PortMapping]:
    """PORTS if there are at most MAX_PORTS and no floating IP port/protocol is published twice (else ValueError)."""
    if len(ports) > MAX_PORTS:
        raise ValueError(f"at most {MAX_PORTS} ports may be published per container, got {len(ports)}")
    seen: set[tuple[int, str]] = set()
    for p in ports:
        if (p.fip_port, p.protocol) in seen:
            raise ValueError(f"floating IP port {p.fip_port}/{p.protocol} is published twice")
        seen.add((p.fip_port, p.protocol))
    return ports


def expand(items: object) -> object:
    """A list of mappings where each string item is parsed (and may expand to several); others pass as they are."""
    if not isinstance(items, list):
        return items
    out: list[object] = []
    for item in items:
        out.extend(parse_ports(item) if isinstance(item, str) else [item])
    return out


def with_exposed(ports: list[PortMapping], exposed: list[str]) -> list[PortMapping]:
    """PORTS plus each EXPOSED port ('80/tcp') not published yet, on the same port number (Docker's -P)."""
    published = {(p.container_port, p.protocol) for p in ports}
    added = []
    for item in exposed:
        number, _, proto = item.partition("/")
        [mapping] = parse_ports(f"{number}:{number}/{proto}")
        if (mapping.container_port, mapping.protocol) not in published:
            published.add((mapping.container_port, mapping.protocol))
            added.append(mapping)
    return [*ports, *added]
