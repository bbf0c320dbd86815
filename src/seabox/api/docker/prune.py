"""Docker's prune filters (until, label, label!=): which stopped containers or unused volumes a prune removes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from seabox.errors import InvalidArgument

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(text: str, now: float | None = None) -> float:
    """Docker's `until`: Unix seconds (fractions allowed), an RFC 3339 time, or a Go duration before now (24h, 1h30m)."""
    now = time.time() if now is None else now
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if value and _DURATION_PART.sub("", value) == "" and (parts := _DURATION_PART.findall(value)):
        return now - sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"until must be a Unix time, an RFC 3339 time or a duration such as 24h, got {text[:80]!r}",
                              field="filters") from None


@dataclass
class PruneFilter:
    """What a prune selects: made before UNTIL, with every label in WITH and none in WITHOUT ((key, value|None))."""

    until: float | None = None
    with_labels: list[tuple[str, str | None]] = field(default_factory=list)
    without_labels: list[tuple[str, str | None]] = field(default_factory=list)

    def selects(self, created: float, labels: dict[str, str]) -> bool:
        def has(key: str, value: str | None) -> bool:
            return key in labels and (value is None or labels[key] == value)

        return (
            (self.until is None or created < self.until)
            and all(has(k, v) for k, v in self.with_labels)
            and not any(has(k, v) for k, v in self.without_labels)
        )


def _label(text: str) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    return key, value if sep else None


def prune_filter(filters: dict[str, list[str]], allowed: set[str]) -> PruneFilter:
    """FILTERS (Docker's query parameter, parsed) as a PruneFilter; a key outside ALLOWED is a 400 naming it."""
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise InvalidArgument(f"invalid filter {unknown[0]!r}: a prune here takes {', '.join(sorted(allowed))}",
                              field="filters")
    until = filters.get("until", [])
    if len(until) > 1:
        raise InvalidArgument("give until once", field="filters")
    return PruneFilter(
        until=parse_until(until[0]) if until else None,
        with_labels=[_label(v) for v in filters.get("label", [])],
        without_labels=[_label(v) for v in filters.get("label!", [])],
    )
