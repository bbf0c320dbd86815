"""Pure helpers of the API's limits: token buckets, bounded JSON, the connection guard, path redaction, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from seabox.api.body import parse_json
from seabox.api.connections import ConnectionGuard
from seabox.api.docker.schema import ContainerCreateBody
from seabox.api.errors import redact
from seabox.api.metrics import metrics_token
from seabox.api.ratelimit import TokenBuckets
from seabox.config import ApiConfig, RateLimit
from seabox.errors import InvalidArgument, TooManyRequests, validation_error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(rate=2, burst=3), clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0  # keys do not share a bucket
    clock.now += 0.5
    assert buckets.take("a") == 0
    assert buckets.take("a") > 0


def test_rate_zero_turns_the_limit_off_and_buckets_are_bounded() -> None:
    assert all(TokenBuckets(RateLimit(rate=0, burst=1)).take("k") == 0 for _ in range(100))
    clock = Clock()
    buckets = TokenBuckets(RateLimit(rate=1, burst=1), clock, max_buckets=2)
    buckets.take("a")
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: it starts again with a full bucket
    assert buckets.take("a") == 0 and buckets.take("c") > 0


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert TooManyRequests("slow down", 0.2).headers() == {"Retry-After": "1"}
    assert TooManyRequests("slow down", 2.5).headers() == {"Retry-After": "3"}


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"a": "\xff"}', "not valid UTF-8"),
    (b"{", "not valid JSON"),
    (b"[" * 5000, "nested more than 8"),
    (b'{"a": ' * 9 + b"1" + b"}" * 9, "nested more than 8"),
    (b"[NaN]", "NaN is not a JSON number"),
    (b"[-Infinity]", "not a JSON number"),
    (b"[1e400]", "out of range"),
    (b"[" + b"7" * 5000 + b"]", "not valid JSON"),
])
def test_bad_json_is_an_invalid_argument(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_json(raw, 8)
    assert words in err.value.message and err.value.field == "body"


def test_json_within_bounds_parses() -> None:
    assert parse_json(b'{"a": [[1, 2.5]], "b": "\xc3\xa9"}', 3) == {"a": [[1, 2.5]], "b": "\u00e9"}
    assert parse_json('{"label": {"a=b": true}}', 2, "filters", "filters") == {"label": {"a=b": True}}


@dataclass(eq=False)
class FakeConn:
    address: str
    busy: bool = False
    closed: bool = False

    def idle(self) -> bool:
        return not self.busy

    def force_close(self) -> None:
        self.closed = True


def guard(cap: int, per_address: int = 1000) -> ConnectionGuard:
    return ConnectionGuard(ApiConfig(max_connections=cap, max_connections_per_address=per_address), cap, Clock())


def test_past_the_cap_the_oldest_idle_connection_is_closed() -> None:
    g = guard(16)
    conns = [FakeConn(f"10.0.0.{i}") for i in range(16)]
    conns[0].busy = True  # a hijacked stream: never evicted
    for c in conns:
        g.opened(c)
    newcomer = FakeConn("10.0.1.1")
    g.opened(newcomer)
    assert conns[1].closed and not conns[0].closed and not newcomer.closed
    assert len(g.conns) == 16 and g.closed == {"max_connections": 1}


def test_when_every_connection_is_busy_the_newcomer_is_refused() -> None:
    g = guard(16)
    for i in range(16):
        g.opened(FakeConn(f"10.0.0.{i}", busy=True))
    newcomer = FakeConn("10.0.1.1")
    g.opened(newcomer)
    assert newcomer.closed and len(g.conns) == 16


def test_one_address_cannot_push_out_others() -> None:
    g = guard(100, per_address=4)
    other = FakeConn("10.0.0.2")
    g.opened(other)
    flood = [FakeConn("10.0.0.1") for _ in range(10)]
    for c in flood:
        g.opened(c)
    assert not other.closed
    assert [c.closed for c in flood] == [True] * 6 + [False] * 4
    for c in flood[6:]:
        g.lost(c)
    assert "10.0.0.1" not in g.by_address


def test_active_connections_move_to_the_back_of_the_line() -> None:
    g = guard(16)
    conns = [FakeConn(f"10.0.0.{i}") for i in range(16)]
    for c in conns:
        g.opened(c)
    g.active(conns[0])
    g.opened(FakeConn("10.0.1.1"))
    assert not conns[0].closed and conns[1].closed


def test_server_paths_are_redacted_longest_first() -> None:
    paths = {"/var/lib/seabox": "DATA_DIR", "/var/lib/seabox/run": "RUN_DIR"}
    assert redact("cannot mount /var/lib/seabox/run/x and /var/lib/seabox/y", paths) == \
        "cannot mount RUN_DIR/x and DATA_DIR/y"


def test_the_metrics_token_is_private_and_stable_until_rotated(tmp_path: Path) -> None:
    token = metrics_token(tmp_path)
    assert len(token) >= 32 and (tmp_path / "metrics.token").stat().st_mode & 0o777 == 0o600
    assert metrics_token(tmp_path) == token
    assert metrics_token(tmp_path, rotate=True) != token


@pytest.mark.parametrize(("body", "field"), [
    ({"HostConfig": "x"}, "HostConfig"),
    ({"HostConfig": {"Memory": "abc"}}, "HostConfig.Memory"),
    ({"HostConfig": {"Binds": [1]}}, "HostConfig.Binds.0"),
    ({"Cmd": 3}, "Cmd"),
])
def test_docker_create_bodies_are_typed(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ContainerCreateBody.model_validate(body)
    assert validation_error(err.value).field == field


def test_docker_create_bodies_keep_what_the_client_sent() -> None:
    dumped = ContainerCreateBody.model_validate(
        {"Image": "busybox", "Cmd": "sh", "Tty": "no", "HostConfig": {"Memory": "64", "Foo": 1}}
    ).model_dump(exclude_unset=True)
    assert dumped == {"Image": "busybox", "Cmd": ["sh"], "Tty": False, "HostConfig": {"Memory": 64, "Foo": 1}}
