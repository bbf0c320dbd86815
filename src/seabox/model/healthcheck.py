"""Docker-style container healthchecks: the check a container carries (a command run inside it) and its health state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seabox.errors import InvalidArgument

# Docker's defaults for what a check leaves unset (0 in Docker's API), in seconds
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
# Seabox's bounds: every probe is an exec and a status write, so none more often than MIN_PERIOD
MIN_PERIOD = 0.1
MAX_PERIOD = 86400.0
MAX_RETRIES = 1000
MAX_TEST_BYTES = 16384
OUTPUT_MAX = 4096  # bytes of a probe's output kept, as Docker keeps
LOG_MAX = 5  # probes kept in the health log, as Docker keeps
SHELL = ["/bin/sh", "-c"]
HealthStatus = Literal["starting", "healthy", "unhealthy"]
_NS = 1e9


class Healthcheck(BaseModel):
    """TEST (["NONE"] | ["CMD", arg...] | ["CMD-SHELL", command]; [] inherits the image's) run every INTERVAL
    seconds within TIMEOUT; RETRIES failures in a row make the container unhealthy, except failures in its first
    START_PERIOD seconds, probed every START_INTERVAL. None: the image's value, else Docker's default."""

    model_config = ConfigDict(extra="forbid")

    test: list[str] = Field(default_factory=list)
    interval: float | None = Field(None, ge=MIN_PERIOD, le=MAX_PERIOD)
    timeout: float | None = Field(None, ge=MIN_PERIOD, le=MAX_PERIOD)
    start_period: float | None = Field(None, ge=0, le=MAX_PERIOD)
    start_interval: float | None = Field(None, ge=MIN_PERIOD, le=MAX_PERIOD)
    retries: int | None = Field(None, ge=1, le=MAX_RETRIES)

    @field_validator("test")
    @classmethod
    def _test(cls, v: list[str]) -> list[str]:
        check_test(v)
        return v

    def merged(self, image: Healthcheck | None) -> Healthcheck:
        """This check with what it leaves unset taken from the image's, as Docker merges them at create."""
        if image is None:
            return self
        mine = self.model_dump(exclude_unset=True, exclude_none=True)
        if not self.test:
            mine.pop("test", None)
        return image.model_copy(update=mine)

    @property
    def enabled(self) -> bool:
        return bool(self.test) and self.test[0] != "NONE"

    def argv(self) -> list[str]:
        """The command the probe execs."""
        return [*SHELL, self.test[1]] if self.test[0] == "CMD-SHELL" else self.test[1:]

    @property
    def every(self) -> float:
        return self.interval or DEFAULT_INTERVAL

    @property
    def every_starting(self) -> float:
        return self.start_interval or DEFAULT_START_INTERVAL

    @property
    def within(self) -> float:
        return self.timeout or DEFAULT_TIMEOUT

    @property
    def grace(self) -> float:
        return self.start_period or 0.0

    @property
    def failures(self) -> int:
        return self.retries or DEFAULT_RETRIES

    @classmethod
    def from_docker(cls, d: Any, field: str) -> Healthcheck | None:
        """Docker's Healthcheck object (durations in nanoseconds, 0 for unset); 400 naming FIELD.KEY when out of range."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise InvalidArgument(f"{field} must be an object", field=field)
        test = d.get("Test") or []
        if not isinstance(test, list) or not all(isinstance(x, str) for x in test):
            raise InvalidArgument(f"{field}.Test must be a list of strings", field=f"{field}.Test")
        try:
            check_test(test)
        except ValueError as exc:
            raise InvalidArgument(f"{field}.Test: {exc}", field=f"{field}.Test") from None
        values: dict[str, Any] = {"test": test}
        for key, name, low in (("Interval", "interval", MIN_PERIOD), ("Timeout", "timeout", MIN_PERIOD),
                               ("StartPeriod", "start_period", 0.0), ("StartInterval", "start_interval", MIN_PERIOD)):
            ns = d.get(key) or 0
            if not isinstance(ns, int) or not (ns == 0 or low * _NS <= ns <= MAX_PERIOD * _NS):
                raise InvalidArgument(f"{field}.{key} must be 0 (the default) or from {low:g}s to {MAX_PERIOD:g}s "
                                      "in nanoseconds", field=f"{field}.{key}")
            values[name] = ns / _NS if ns else None
        retries = d.get("Retries") or 0
        if not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise InvalidArgument(f"{field}.Retries must be from 0 (the default, 3) to {MAX_RETRIES}",
                                  field=f"{field}.Retries")
        values["retries"] = retries or None
        return cls.model_validate(values)

    def to_docker(self) -> dict[str, Any]:
        """As Docker's inspect shows it: what was set, durations in nanoseconds."""
        out: dict[str, Any] = {"Test": self.test}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout), ("StartPeriod", self.start_period),
                           ("StartInterval", self.start_interval)):
            if value:
                out[key] = int(round(value * _NS))
        if self.retries:
            out["Retries"] = self.retries
        return out


def check_test(test: list[str]) -> None:
    """ValueError unless TEST is [], ["NONE"], ["CMD", arg, ...] or ["CMD-SHELL", command], within bounds."""
    if not test:
        return
    if sum(len(x.encode()) for x in test) > MAX_TEST_BYTES:
        raise ValueError(f"the test command is at most {MAX_TEST_BYTES} bytes")
    if any("\0" in x for x in test):
        raise ValueError("the test command cannot hold a NUL")
    kind = test[0]
    if kind == "NONE" and len(test) == 1:
        return
    if kind == "CMD" and len(test) >= 2 and test[1]:
        return
    if kind == "CMD-SHELL" and len(test) == 2 and test[1].strip():
        return
    raise ValueError('the test must be ["NONE"], ["CMD", program, arg...] or ["CMD-SHELL", command]')


class ProbeResult(BaseModel):
    """One probe: when it ran, its exit code (-1: it could not run or timed out) and its output's first 4 KiB."""

    start: datetime
    end: datetime
    exit_code: int
    output: str = Field("", max_length=OUTPUT_MAX)


class Health(BaseModel):
    """A running container's health: its status, failed probes in a row, and the last LOG_MAX probes."""

    status: HealthStatus = "starting"
    failing_streak: int = 0
    log: list[ProbeResult] = Field(default_factory=list, max_length=LOG_MAX)
