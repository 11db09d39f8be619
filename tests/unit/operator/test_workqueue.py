"""The work queue: dedup, one worker per key, delayed adds, backoff; and the worker step."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from driftloop import handlers
from driftloop.api import TRAINING_RUN
from driftloop.cache import CachedKube, ObjectCache
from driftloop.client import CrdCache
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.reconcilers import Outcome
from driftloop.wakeups import Key
from driftloop.workqueue import WorkQueue

KEY = Key("TrainingRun", "ml", "r")


def test_a_key_is_queued_once_and_never_handed_to_two_workers() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a"):
            queue.add(key)
        assert len(queue) == 2
        first = await queue.get()
        queue.add(first)  # an event while it is being reconciled
        assert len(queue) == 1  # not handed out again meanwhile
        second = await queue.get()
        assert (first, second) == ("a", "b")
        queue.done(first)  # ... but processed once more afterwards
        assert await queue.get() == "a"

    asyncio.run(scenario())


def test_delayed_adds_keep_the_earliest_and_failures_back_off() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.05, rng=random.Random(1))
        queue.add_after("a", 10)
        queue.add_after("a", 0.01)  # earlier wins
        queue.add_after("a", 20)  # later loses
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.done("a")
        delays = [queue.retry("b") for _ in range(5)]
        assert delays[0] < delays[1] < delays[2]
        assert max(delays) <= 0.05 * 1.2
        queue.forget("b")
        assert queue.retry("b") <= 0.01 * 1.2

    asyncio.run(scenario())


def _services(kube: FakeKube, cache: ObjectCache, queue: WorkQueue[Key]) -> handlers.Services:
    return handlers.Services(
        OperatorConfig(), CachedKube(kube, cache), CrdCache(kube), cache=cache, queue=queue
    )


RUN: dict[str, Any] = {
    "apiVersion": "driftloop.dev/v1alpha1",
    "kind": "TrainingRun",
    "metadata": {"name": "r", "namespace": "ml", "uid": "u", "resourceVersion": "1"},
    "spec": {},
}


@pytest.fixture
def reconcile_with(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(result: Any) -> None:
        def reconcile(ctx: Any, body: Any) -> Outcome:
            if isinstance(result, Exception):
                raise result
            return result  # type: ignore[no-any-return]

        monkeypatch.setitem(handlers.RECONCILERS, "TrainingRun", (TRAINING_RUN, reconcile))

    return install


def test_a_worker_step_requeues_what_the_outcome_asks(reconcile_with: Any) -> None:
    async def scenario() -> None:
        kube, cache, queue = FakeKube([RUN]), ObjectCache(), WorkQueue[Key]()
        cache.put(RUN)
        reconcile_with(Outcome(requeue_after=0.01))
        await handlers.process(_services(kube, cache, queue), KEY)
        assert await asyncio.wait_for(queue.get(), 1) == KEY

    asyncio.run(scenario())


def test_a_failed_reconcile_is_retried_and_a_deleted_object_dropped(reconcile_with: Any) -> None:
    async def scenario() -> None:
        kube, cache, queue = FakeKube([RUN]), ObjectCache(), WorkQueue[Key](base_delay=0.01)
        services = _services(kube, cache, queue)
        cache.put(RUN)
        reconcile_with(RuntimeError("boom"))
        await handlers.process(services, KEY)
        assert await asyncio.wait_for(queue.get(), 1) == KEY
        queue.done(KEY)
        cache.remove("driftloop.dev/v1alpha1", "TrainingRun", "ml", "r")
        await handlers.process(services, KEY)  # gone: nothing to do, nothing queued
        await asyncio.sleep(0.05)
        assert len(queue) == 0

    asyncio.run(scenario())
