"""The client-side token bucket and the retry backoff."""

from __future__ import annotations

import random

import pytest

from driftloop.ratelimit import TokenBucket, retry_delay


def test_a_burst_passes_then_requests_are_spaced_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(qps=20, burst=30, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(40)]
    assert waits[:30] == [0.0] * 30
    assert waits[30:] == pytest.approx([0.05] * 10)
    assert now[0] == pytest.approx(0.5)  # 10 requests over the burst at 20/s
    now[0] += 10  # idle: the bucket refills to the burst, not beyond
    assert [bucket.acquire() for _ in range(30)] == [0.0] * 30
    assert bucket.acquire() > 0


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="qps > 0 and burst >= 1"):
        TokenBucket(qps=0, burst=1)


def test_retries_honour_retry_after_else_back_off_with_jitter() -> None:
    assert retry_delay(1, "3") == 3.0
    assert retry_delay(1, "3600") == 30.0  # capped
    rng = random.Random(0)
    delays = [retry_delay(n, None, rng) for n in (1, 2, 3)]
    assert 0.16 <= delays[0] <= 0.24
    assert 0.32 <= delays[1] <= 0.48
    assert 0.64 <= delays[2] <= 0.96
    assert 0.16 <= retry_delay(1, "Wed, 21 Oct 2015 07:28:00 GMT", rng) <= 0.24
