"""Events leave the reconcile path: queued, sent by one thread, dropped when full."""

from __future__ import annotations

import threading
from typing import Any

from driftloop.events import EVENTS, EventPoster
from driftloop.fake import FakeKube


def _event(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"e{i}", "namespace": "ml"}}


def _count(result: str) -> float:
    return EVENTS.labels(result)._value.get()  # type: ignore[no-any-return]


def test_a_full_queue_drops_events_instead_of_blocking_a_reconcile() -> None:
    release = threading.Event()

    class Slow(FakeKube):
        def create(self, manifest: Any) -> Any:
            release.wait(10)
            return super().create(manifest)

    kube = Slow()
    dropped = _count("dropped")
    poster = EventPoster(kube, capacity=2)
    for i in range(10):  # the sender holds one, the queue two: the rest are dropped
        poster.post(_event(i))
    assert _count("dropped") - dropped >= 7
    release.set()
    posted = _count("posted")
    for _ in range(100):
        if len(kube.of_kind("Event")) >= 2:
            break
        threading.Event().wait(0.05)
    assert 2 <= len(kube.of_kind("Event")) <= 3
    assert _count("posted") >= posted
