"""One line of a container's output as a node hands it to the control plane."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LogEntry:
    """One output line, fragments joined; data keeps its newline unless the output stopped mid-line."""

    time_ns: int  # of the line's first fragment, nanoseconds since the epoch
    stream: str  # "stdout" or "stderr"
    data: bytes

    @property
    def time(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.time_ns // 1000)

    @property
    def timestamp(self) -> str:
        """RFC 3339 in UTC with nine fractional digits, as `docker logs --timestamps` prints it."""
        seconds, nanos = divmod(self.time_ns, 1_000_000_000)
        return f"{(_EPOCH + timedelta(seconds=seconds)):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"
