"""Scheduled job models: the schedule (croniter, 5 fields or 6 with seconds first), the create request, the stored cron and its runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from seabox.model.container import NAME_RE, EnvList, SizeName
from seabox.model.sizes import DEFAULT_SIZE

# a run's container is NAME-<unix time> (11 characters more, and room for a "-N" when the name is taken)
MAX_NAME = 48
MAX_TIMEOUT = 86400  # seconds a run may take at most
DEFAULT_TIMEOUT = 3600
MAX_SCHEDULE = 256  # characters
MAX_ENV = 128
COUNT_CAP = 10_000  # firings counted one by one (past it, a downtime's count is given as "more than")

Concurrency = Literal["allow", "forbid", "replace"]
# running: its container runs (or is being made); the rest are final
RunStatus = Literal["running", "succeeded", "failed", "timed-out", "skipped", "missed", "replaced"]
Trigger = Literal["schedule", "catch-up", "manual"]


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a time zone: 5 fields (minute first), or 6 whose first is seconds; 1 s at the finest."""

    expression: str
    tz: str

    @classmethod
    def parse(cls, expression: str, tz: str = "UTC") -> Schedule:
        """The schedule, or ValueError naming what is wrong (a field count, a value croniter refuses, a zone)."""
        zone(tz)
        text = " ".join(expression.split())
        fields = len(text.split(" "))
        if not text.startswith("@") and fields not in (5, 6):
            raise ValueError(f"schedule {expression!r} has {fields} fields: give 5 (minute hour day month weekday) "
                             "or 6 (second minute hour day month weekday)")
        schedule = cls(text, tz)
        try:
            schedule.next_after(datetime.now(ZoneInfo(tz)).timestamp())
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValueError(f"schedule {expression!r} is not a valid cron expression: {exc}") from None
        return schedule

    @property
    def seconds(self) -> bool:
        """Whether the first field is seconds."""
        return not self.expression.startswith("@") and len(self.expression.split(" ")) == 6

    def _iter(self, after: float, backwards: bool = False) -> croniter:
        start = datetime.fromtimestamp(after, ZoneInfo(self.tz))
        return croniter(self.expression, start, is_prev=backwards, second_at_beginning=self.seconds)

    def next_after(self, after: float) -> float:
        """The first firing strictly after AFTER (epoch seconds)."""
        return float(self._iter(after).get_next(float))

    def firings(self, after: float, until: float, limit: int) -> tuple[list[float], int]:
        """The last LIMIT firings in (AFTER, UNTIL] and how many there are (counted up to COUNT_CAP, then capped)."""
        found: list[float] = []
        count = 0
        it = self._iter(after)
        while count < COUNT_CAP:
            t = float(it.get_next(float))
            if t > until:
                return found[-limit:] if limit else [], count
            found.append(t)
            count += 1
            if len(found) > 2 * limit:
                del found[: len(found) - limit]
        back = self._iter(until + 0.001, backwards=True)  # too many to walk: the last LIMIT, counted as the cap
        last = [float(back.get_prev(float)) for _ in range(limit)]
        return sorted(t for t in last if t > after), COUNT_CAP



def zone(tz: str) -> ZoneInfo:
    """The IANA time zone TZ, or ValueError naming it."""
    try:
        if not tz or tz.startswith("/") or ".." in tz:
            raise ValueError
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}: use an IANA name such as UTC or Europe/Paris") from None


class CronSpec(BaseModel):
    """What a tenant asked of a cron: when, how runs may overlap, how long one may take, and the container."""

    model_config = ConfigDict(extra="forbid")

    tz: str = Field("UTC", min_length=1, max_length=64)  # before schedule, which is read in it
    schedule: str = Field(min_length=1, max_length=MAX_SCHEDULE)
    concurrency: Concurrency = "allow"
    timeout: int = Field(DEFAULT_TIMEOUT, ge=1, le=MAX_TIMEOUT)  # seconds; a run past it is killed (timed-out)
    size: SizeName = DEFAULT_SIZE
    env: EnvList = Field(default_factory=list, max_length=MAX_ENV)
    image: str = Field(min_length=1, max_length=512)
    cmd: list[str] | None = Field(None, max_length=256)

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        zone(v)
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str, info: ValidationInfo) -> str:
        return Schedule.parse(v, info.data.get("tz", "UTC")).expression

    @property
    def parsed(self) -> Schedule:
        return Schedule.parse(self.schedule, self.tz)


class CronCreate(CronSpec):
    """POST /v1/crons: a named cron."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or len(v) > MAX_NAME:
            raise ValueError(f"invalid cron name {v!r}: 1-{MAX_NAME} of [a-zA-Z0-9_.-], starting with a letter or digit")
        return v

    def spec(self) -> CronSpec:
        return CronSpec.model_validate(self.model_dump(exclude={"name"}))


class CronRun(BaseModel):
    """One firing of a cron: its container while it ran, and how it ended (log_tail: its last output)."""

    id: int
    cron: str
    scheduled_at: datetime
    trigger: Trigger
    status: RunStatus
    container: str | None = None  # the container's name, NAME-<unix time>
    container_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    log_tail: str = ""
    message: str = ""


class Cron(BaseModel):
    """A cron as the API returns it."""

    name: str
    tenant: str
    spec: CronSpec
    suspended: bool
    next_run: datetime | None  # None while suspended
    last_result: CronRun | None  # the latest run that has ended
    created_at: datetime
