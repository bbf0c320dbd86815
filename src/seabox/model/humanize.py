"""Human wording shared by CLI, API and scheduler: Docker's times and states ('Up 3 seconds'), byte sizes and CPUs."""

from __future__ import annotations

from datetime import UTC, datetime

from seabox.model.sizes import GiB, MiB


def human_bytes(n: int) -> str:
    """A byte count as messages word it: '512 MiB', '1.5 GiB', '4 GiB'."""
    if n >= GiB:
        return f"{n / GiB:.1f}".removesuffix(".0") + " GiB"
    return f"{n // MiB} MiB"


def human_cpus(n: float) -> str:
    """A CPU count as messages word it: '1 CPU', '2 CPUs', '0.5 CPUs'."""
    return f"{n:g} CPU" + ("" if n == 1 else "s")


def human_duration(seconds: float) -> str:
    """A duration as docker words it: '5 seconds', 'About a minute', '3 hours', '2 weeks'."""
    s = int(seconds)
    minutes = s // 60
    hours = int(seconds / 3600 + 0.5)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{int(seconds / 3600) // (24 * 365)} years"


HEALTH_WORDS = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}


def status_words(
    state: str, exit_code: int, started_at: datetime | None, finished_at: datetime | None, now: datetime | None = None,
    health: str | None = None,
) -> str:
    """A container's STATUS column as `docker ps` words it (HEALTH: its healthcheck's status while it runs)."""
    now = now or datetime.now(UTC)
    if state in ("running", "paused"):
        up = f"Up {human_duration((now - started_at).total_seconds())}" if started_at else "Up"
        return up + " (Paused)" if state == "paused" else up + HEALTH_WORDS.get(health or "", "")
    if state in ("exited", "restarting"):
        word = "Exited" if state == "exited" else "Restarting"
        if finished_at is None:
            return word
        return f"{word} ({exit_code}) {human_duration((now - finished_at).total_seconds())} ago"
    words = {"created": "Created", "dead": "Dead", "removing": "Removal In Progress", "lost": "Lost (node down)"}
    return words.get(state, state.capitalize())
