"""kopf handlers: watch events in, reconciles out through a work queue.

kopf watches our four kinds and the children the operator owns: Jobs, predictor
Deployments and their pods (selected server-side by ``app.kubernetes.io/managed-by``),
and the ``FailedCreate`` Events of Jobs (a quota refusing pods is reported nowhere
else).  Every event updates the cache (:mod:`driftloop.cache`), and the rules of
:mod:`driftloop.wakeups` put the keys of the objects to reconcile on the work queue
(:mod:`driftloop.workqueue`); a bounded pool of workers reconciles them.  kopf holds
every handler back until each stream's initial listing is in the cache (that is what
the ``*-cache`` index handlers are for), so the first reconciles already see the whole
cluster, and every object is reconciled once at start (kopf's "resume").

Nothing polls.  An object is reconciled when it or something it reads changes, when
its reconcile asked for a time (``Outcome.requeue_after``: a rollout deadline, a
refresh window, a trigger's next evaluation), after a failure (with backoff), and on
a slow resync (every ``resync_interval``) that is only a safety net.

kopf writes nothing to our objects: no handler needs its progress annotations, and
with no timers or deletion handlers it puts no finalizer on them.

Nothing registers at import: :func:`register` adds the handlers to a registry that
``driftloop.__main__`` hands to kopf, with the :class:`Services` built once there
passed through kopf's ``memo``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from driftloop import builders, conditions, metrics, wakeups
from driftloop.api import (
    ALL_KINDS,
    API_VERSION,
    DATASET,
    DEPLOYMENT,
    GROUP,
    MANAGED_BY,
    MODEL_VERSION,
    TRAINING_RUN,
    VERSION,
    KindInfo,
)
from driftloop.cache import ObjectCache
from driftloop.client import ConflictError, CrdCache, KubeClient, Obj
from driftloop.config import OperatorConfig
from driftloop.events import EventSink, PostNow
from driftloop.health import WatchEchoes
from driftloop.leadership import Leadership, NoElection, NotLeaderError
from driftloop.naming import LABEL_MANAGED_BY
from driftloop.reconcilers import (
    Context,
    Outcome,
    Reconciler,
    reconcile_dataset,
    reconcile_deployment,
    reconcile_model_version,
    reconcile_training_run,
)
from driftloop.wakeups import Key
from driftloop.workqueue import WorkQueue

log = logging.getLogger("driftloop")

#: How long the operator waits at start for its CRDs when it may not discover them.
CRD_WAIT_SECONDS = 120.0
#: The finalizer kopf put on objects before driftloop stopped needing one.
LEGACY_FINALIZER = f"{GROUP}/finalizer"

RECONCILERS: dict[str, tuple[KindInfo, Reconciler]] = {
    DATASET.kind: (DATASET, reconcile_dataset),
    TRAINING_RUN.kind: (TRAINING_RUN, reconcile_training_run),
    MODEL_VERSION.kind: (MODEL_VERSION, reconcile_model_version),
    DEPLOYMENT.kind: (DEPLOYMENT, reconcile_deployment),
}

#: The children watched: (group, version, plural), and the server-side filter of each.
CHILDREN: dict[tuple[str, str, str], tuple[str, str]] = {
    ("batch", "v1", "jobs"): (f"{LABEL_MANAGED_BY}={MANAGED_BY}", ""),
    ("apps", "v1", "deployments"): (f"{LABEL_MANAGED_BY}={MANAGED_BY}", ""),
    ("", "v1", "pods"): (f"{LABEL_MANAGED_BY}={MANAGED_BY}", ""),
    ("", "v1", "events"): ("", "involvedObject.kind=Job,reason=FailedCreate"),
}


@dataclass(frozen=True)
class Services:
    """What every handler shares; built once in ``main`` and passed as ``memo.services``."""

    config: OperatorConfig
    #: Reads from ``cache``, writes fenced by ``leadership`` (in the operator).
    kube: KubeClient
    crds: CrdCache
    leadership: Leadership = field(default_factory=NoElection)
    echoes: WatchEchoes = field(default_factory=WatchEchoes)
    cache: ObjectCache = field(default_factory=ObjectCache)
    #: The reconcile queue (None until the event loop runs it: see driftloop.__main__).
    queue: WorkQueue[Key] | None = None
    #: Where the reconcilers' Events go (default: posted at once through ``kube``).
    events: EventSink | None = None
    #: Removes a finalizer from one of our objects (``Kube.release_finalizer``).
    release_finalizer: Callable[[Mapping[str, Any], str], None] | None = None

    def post_event(self, event: Obj) -> None:
        (self.events or PostNow(self.kube)).post(event)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add driftloop's handlers to ``registry``."""
    # A plain registry has none of kopf's implicit login handlers: log in the way the
    # official client does (in-cluster service account, else the kubeconfig).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(configure)
    for kind in ALL_KINDS:
        _watch(registry, GROUP, VERSION, kind.plural, kind.singular, on_resource_event)
    for group, version, plural in CHILDREN:
        _watch(registry, group, version, plural, f"{group or 'core'}-{plural}", on_child_event)


def _watch(
    registry: kopf.OperatorRegistry,
    group: str,
    version: str,
    plural: str,
    name: str,
    on_event: Callable[..., Any],
) -> None:
    """Cache every object of the resource and pass its events to ``on_event``."""
    kopf.index(group=group, version=version, plural=plural, id=f"{name}-cache", registry=registry)(
        cache_object
    )
    kopf.on.event(
        group=group, version=version, plural=plural, id=f"{name}-event", registry=registry
    )(on_event)


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    settings.posting.enabled = False  # the reconcilers' Events are posted by run()
    settings.watching.server_timeout = 300
    for (group, version, plural), (labels, fields) in CHILDREN.items():
        selector = (f"{group}/{version}" if group else version, plural)
        if labels:
            settings.watching.label_selectors[selector] = labels
        if fields:
            settings.watching.field_selectors[selector] = fields
    if settings.scanning.disabled:
        # kopf then resolves our resources once, right after this handler: they must exist.
        wait_for_crds(services.kube, timeout=CRD_WAIT_SECONDS)
    log.info("driftloop operator configured: %s", services.config)


def wait_for_crds(
    kube: KubeClient, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    names = [kind.crd_name for kind in ALL_KINDS]
    deadline = time.monotonic() + timeout
    while missing := [name for name in names if not kube.crd_established(name)]:
        if time.monotonic() > deadline:
            raise kopf.PermanentError(
                f"CustomResourceDefinitions not established after {timeout:.0f}s: "
                f"{', '.join(missing)}; install crds/ or the chart with crds.enabled=true"
            )
        log.info("waiting for CustomResourceDefinitions: %s", ", ".join(missing))
        sleep(2)


# ---------------------------------------------------------------------------- events in


def cache_object(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """kopf's index handler, run for every event but deletions, before any other
    handler; returning nothing, it indexes nothing in kopf itself."""
    memo.services.cache.put(body)


async def on_resource_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    meta = body.metadata
    services.echoes.seen(
        body["kind"], meta.uid or "", meta.get("resourceVersion") or "", deleted=type == "DELETED"
    )
    if type == "DELETED":
        services.cache.remove(API_VERSION, body["kind"], meta.namespace or "", meta.name or "")
        metrics.PHASES.set(body["kind"], meta.uid or "", None)
        if services.queue is not None:
            services.queue.drop(Key(body["kind"], meta.namespace or "", meta.name or ""))
    if LEGACY_FINALIZER in (meta.get("finalizers") or []):
        await asyncio.to_thread(_release_legacy_finalizer, services, body)
    _enqueue(services, wakeups.for_resource(body, services.cache))


async def on_child_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    if type == "DELETED":
        meta = body.metadata
        services.cache.remove(
            body["apiVersion"], body["kind"], meta.namespace or "", meta.name or ""
        )
    if body["kind"] == "Event" and type == "MODIFIED":
        # The Job controller retrying a refused pod bumps its FailedCreate Event's count;
        # the same message says nothing new (a new message is a new Event).
        return
    _enqueue(services, wakeups.for_child(body, services.cache))


def _enqueue(services: Services, keys: list[Key]) -> None:
    if services.queue is not None:
        for key in keys:
            services.queue.add(key)


def _release_legacy_finalizer(services: Services, body: Mapping[str, Any]) -> None:
    """Objects made before driftloop stopped using kopf's finalizer still carry it:
    without a handler to lift it, they could never be deleted."""
    if services.release_finalizer is not None and services.leadership.held():
        services.release_finalizer(body, LEGACY_FINALIZER)


# ---------------------------------------------------------------------------- reconciles out


async def process(services: Services, key: Key) -> None:
    """One reconcile of ``key`` (a queue worker's step)."""
    assert services.queue is not None
    kind, reconcile = RECONCILERS[key.kind]
    body = services.cache.get(API_VERSION, key.kind, key.namespace, key.name)
    if body is None:
        services.queue.drop(key)  # deleted since it was queued
        return
    try:
        outcome = await asyncio.to_thread(run, kind, reconcile, body, services)
    except NotLeaderError:
        return  # the watchdog ends this process; the new leader reconciles it
    except ConflictError:
        metrics.QUEUE_RETRIES.labels(key.kind).inc()
        services.queue.retry(key)  # the cache gets the newer object; reconcile from it
        return
    except Exception:
        log.exception("reconcile of %s failed", key)
        metrics.QUEUE_RETRIES.labels(key.kind).inc()
        services.queue.retry(key)
        return
    services.queue.forget(key)
    if outcome.requeue_after is not None:
        services.queue.add_after(key, outcome.requeue_after)


async def resync(services: Services, interval: float, rng: random.Random | None = None) -> None:
    """Every ``interval`` (+-10%), queue every object: the safety net under events."""
    assert services.queue is not None
    rng = rng or random.Random()
    while True:
        await asyncio.sleep(interval * rng.uniform(0.9, 1.1))
        for kind in RECONCILERS:
            for namespace, name in services.cache.names(API_VERSION, kind):
                services.queue.add(Key(kind, namespace, name))


def run(
    kind: KindInfo,
    reconcile: Reconciler,
    body: Mapping[str, Any],
    services: Services,
    now: datetime | None = None,
) -> Outcome:
    """One reconcile: compute the outcome, write the status diff (if any), post events.

    Raises :class:`ConflictError` when the object changed since ``body`` was read
    (reconcile again from the newer one) and :class:`NotLeaderError` when this
    replica no longer holds the Lease.
    """
    if not services.leadership.held():
        # A standby never gets here (it runs no kopf); a leader past its renew deadline
        # may, for the half second before its watchdog ends the process.
        raise NotLeaderError("this replica no longer holds the leader lease")
    ctx = Context(services.kube, services.config, now or datetime.now(UTC), services.crds)
    obj = copy.deepcopy(dict(body))  # a private copy: reconcilers may annotate what they read
    started = time.perf_counter()
    try:
        outcome = reconcile(ctx, obj)
    except Exception:
        metrics.RECONCILES.labels(kind.kind, "error").inc()
        raise
    finally:
        metrics.RECONCILE_DURATION.labels(kind.kind).observe(time.perf_counter() - started)
    patch = conditions.status_patch(obj.get("status") or {}, outcome.status)
    meta = obj["metadata"]
    if patch:
        metrics.STATUS_PATCHES.labels(kind.kind).inc()
        try:
            # Conditioned on the version this reconcile read: a concurrent writer wins,
            # and we reconcile again from the newer object.
            ctx.kube.patch_status(
                kind, meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )
        except ConflictError:
            metrics.RECONCILES.labels(kind.kind, "conflict").inc()
            raise
        # The write must come back through the watch (driftloop.health).
        services.echoes.wrote(kind.kind, meta["uid"], meta.get("resourceVersion") or "")
        log.info(
            "%s %s/%s: wrote status (%s)",
            kind.kind,
            meta["namespace"],
            meta["name"],
            ", ".join(sorted(patch)),
        )
    metrics.RECONCILES.labels(kind.kind, "ok").inc()
    metrics.PHASES.set(kind.kind, meta["uid"], outcome.phase)
    for event in outcome.events:
        services.post_event(builders.event(obj, event.type, event.reason, event.message, ctx.now))
    return outcome
