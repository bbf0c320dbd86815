"""Request rate limits: a token bucket per client address and per credential, answering 429 with Retry-After."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from seabox.api.auth import request_key
from seabox.api.errors import Handler
from seabox.config import ApiConfig, RateLimit
from seabox.errors import TooManyRequests
from seabox.tls import peer_common_name

MAX_BUCKETS = 65536  # buckets remembered per limiter; the least recently used is forgotten past it


class TokenBuckets:
    """One token bucket per key: RATE tokens a second, up to BURST; each request takes one."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self.limit = limit
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0 if KEY may make a request now (a token is taken), else the seconds until it may."""
        rate, burst = self.limit.rate, self.limit.burst
        if rate == 0:
            return 0.0
        now = self._clock()
        tokens, then = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - then) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


def _refuse(what: str, limit: RateLimit, key: str, wait: float) -> TooManyRequests:
    return TooManyRequests(
        f"too many requests {what}: at most {limit.rate:g} a second (bursts of {limit.burst}); "
        f"retry in {wait:.1f} s ([api] {key} in the server's config.toml)", wait)


def _credential(request: web.Request) -> str | None:
    key = request_key(request)
    if key is not None:
        return "key:" + key
    transport = request.transport
    cn = peer_common_name(transport.get_extra_info("peercert") if transport else None)
    return "cert:" + cn if cn else None


def rate_limit_middleware(cfg: ApiConfig) -> Middleware:
    """Checked before authentication, so a flood of bad keys costs no database lookups past its limit."""
    per_address = TokenBuckets(cfg.rate_per_address)
    per_key = TokenBuckets(cfg.rate_per_key)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = per_address.take(request.remote or "")
        if wait:
            raise _refuse(f"from {request.remote}", cfg.rate_per_address, "rate_per_address", wait)
        credential = _credential(request)
        if credential is not None:
            wait = per_key.take(credential)
            if wait:
                raise _refuse("with this credential", cfg.rate_per_key, "rate_per_key", wait)
        return await handler(request)

    return middleware
