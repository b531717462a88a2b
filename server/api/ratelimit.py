"""Per-credential rate limiting: a token bucket per API key (or token), counted in events.

`METERING_RATE_LIMIT` is the sustained rate in events per second per key (unset, empty or 0: off,
the default); `METERING_RATE_BURST` the bucket size (default: one second's worth, at least 1).
A unary call costs 1, except ingest: `RecordEvents` costs its number of events and every
`StreamEvents` message costs 1 (streams are slowed down, never refused: backpressure). A call
costing more than the bucket passes when the bucket is full and leaves it in debt, so a large
batch is never refused forever. Buckets live in the memory of one server process (per replica:
N replicas allow N times the rate); they are keyed by a hash of the credential, never the
credential itself, and capped in number (least recently used dropped first).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping

from metering.lru import LRU

MAX_BUCKETS = 100_000


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after:.3f}s")
        self.retry_after = retry_after


def limits_from_env(env: Mapping[str, str] | None = None) -> tuple[float | None, float | None]:
    env = os.environ if env is None else env
    raw, burst_raw = env.get("METERING_RATE_LIMIT", ""), env.get("METERING_RATE_BURST", "")
    try:
        rate = float(raw) if raw.strip() else 0.0
        burst = float(burst_raw) if burst_raw.strip() else None
    except ValueError:
        raise ValueError("METERING_RATE_LIMIT / METERING_RATE_BURST must be numbers (events per second)") from None
    if not math.isfinite(rate) or rate < 0 or (burst is not None and (not math.isfinite(burst) or burst <= 0)):
        raise ValueError("METERING_RATE_LIMIT must be >= 0 and METERING_RATE_BURST > 0")
    return (rate or None), burst


class RateLimiter:
    """Token buckets keyed by credential. `rate` events/s, `burst` bucket size."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(self.rate, 1.0)
        self._clock = clock
        self._buckets: LRU[bytes, tuple[float, float]] = LRU(MAX_BUCKETS)  # key -> (tokens, at)

    @staticmethod
    def key_of(authorization: str) -> bytes:
        return hashlib.sha256(authorization.strip().encode()).digest()

    def wait_time(self, authorization: str, cost: float = 1.0) -> float:
        """Takes `cost` tokens and returns 0, or takes nothing and returns the seconds to wait."""
        key = self.key_of(authorization)
        now = self._clock()
        found = self._buckets.get(key)  # a new key's bucket is full
        tokens = self.burst if found is None else min(self.burst, found[0] + (now - found[1]) * self.rate)
        need = min(cost, self.burst)
        if tokens >= need:
            self._buckets.put(key, (tokens - cost, now))
            return 0.0
        self._buckets.put(key, (tokens, now))
        return (need - tokens) / self.rate

    def acquire(self, authorization: str, cost: float = 1.0) -> None:
        wait = self.wait_time(authorization, cost)
        if wait > 0:
            raise RateLimited(wait)


def from_env(env: Mapping[str, str] | None = None) -> RateLimiter | None:
    rate, burst = limits_from_env(env)
    return RateLimiter(rate, burst) if rate else None
