"""Posting the reconcilers' Events off the reconcile path, as client-go's recorder does.

Events are best-effort records for ``kubectl describe``: a reconcile must not wait for
them, and a burst (a thousand runs each announcing a Job) must not take the reconcilers'
API budget.  :class:`EventPoster` queues them (bounded: when full, new Events are
dropped and counted) and one thread sends them through a client with its own rate limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

from prometheus_client import Counter

from driftloop.client import KubeClient, Obj

log = logging.getLogger("driftloop.events")

EVENTS = Counter(
    "driftloop_operator_events_total",
    "Events about our objects by result (posted, dropped: queue full, failed).",
    ["result"],
)


class EventSink(Protocol):
    def post(self, event: Obj) -> None: ...


class PostNow:
    """Posts in the caller's thread (the unit tests' sink)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def post(self, event: Obj) -> None:
        self.kube.create(event)


class EventPoster:
    """A bounded queue and one sender thread."""

    def __init__(self, kube: KubeClient, capacity: int = 1000) -> None:
        self.kube = kube
        self._queue: queue.Queue[Obj] = queue.Queue(maxsize=capacity)
        threading.Thread(target=self._send, name="events", daemon=True).start()

    def post(self, event: Obj) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            EVENTS.labels("dropped").inc()

    def _send(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self.kube.create(event)
                EVENTS.labels("posted").inc()
            except Exception as error:  # best effort: a lost Event loses no state
                EVENTS.labels("failed").inc()
                log.warning("event %s not posted: %s", event["metadata"]["name"], error)
