"""Client-side limits on the operator's API requests (client-go's token bucket).

A burst of 5,000 new objects must not turn into 5,000 requests in a second: every
reconcile request takes a token from a bucket refilled at ``qps`` up to ``burst``
(controller-runtime's client defaults: 20 / 30).  Watches are not limited: they are
long-lived and few.  Requests refused with 429 or failing with a 5xx are retried a
few times after a jittered backoff (the server's Retry-After when it sends one).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Thread-safe: the reconcile workers share one bucket."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"rate limit needs qps > 0 and burst >= 1, got {qps} / {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0: now)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.qps)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self) -> float:
        """Take a token, waiting for it; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


#: Statuses worth another try: throttled, or the server (or what is in front of it) failed.
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def retry_delay(attempt: int, retry_after: str | None, rng: random.Random | None = None) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): Retry-After if given, else 0.2 s
    doubling, with +-20% jitter so retries of many workers do not line up."""
    if retry_after:
        try:
            return min(30.0, max(0.0, float(retry_after)))
        except ValueError:
            pass  # an HTTP date: use our own backoff
    return float(0.2 * 2 ** (attempt - 1) * (rng or random).uniform(0.8, 1.2))
