"""A work queue of object keys, as client-go's ``workqueue``: the reconcile scheduler.

* **Deduplicated**: a key waiting in the queue is queued once, however many events
  name it; a burst of events for one object costs one reconcile.
* **One worker per key**: a key being processed is not handed to a second worker; if
  it is added meanwhile, it is processed again once the first pass is done.
* **Delayed adds**: ``add_after`` (a rollout deadline, a refresh window, a trigger's
  next evaluation): time is the only input for those.
* **Per-key backoff** on failures: 0.5 s doubling to 5 min, with jitter, reset by
  a success (client-go's ``ItemExponentialFailureRateLimiter``).

Bounded concurrency is the number of workers reading it (:func:`run_workers`).
Single-threaded: every method runs in the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from driftloop import metrics

log = logging.getLogger("driftloop.workqueue")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._rng = rng or random.Random()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing
        self._failures: dict[K, int] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._ready.set()
            metrics.QUEUE_DEPTH.set(len(self._queue))

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` in ``delay`` seconds; an earlier pending add wins over a later one."""
        if delay <= 0:
            self.add(key)
            return
        due = self._clock() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: K) -> float:
        """Add ``key`` again after its backoff; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.max_delay, self.base_delay * 2.0**failures)
        delay *= float(self._rng.uniform(0.8, 1.2))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """A success: the next failure starts its backoff from the base again."""
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: no retry, no timer."""
        self.forget(key)
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    async def get(self) -> K:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        metrics.QUEUE_DEPTH.set(len(self._queue))
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)


async def run_workers(
    queue: WorkQueue[K], count: int, process: Callable[[K], Awaitable[None]]
) -> None:
    """``count`` workers taking keys from ``queue`` until cancelled."""

    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                await process(key)
            except Exception:  # process() handles its own errors; this keeps a worker alive
                log.exception("reconcile of %s failed", key)
                queue.retry(key)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(count)))
