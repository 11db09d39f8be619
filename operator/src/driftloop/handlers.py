"""kopf handlers: thin wiring of reconcilers to events and timers.

Every kind is reconciled level-based by one function: on create, on resume
(operator start), on any change, and on a timer that follows Jobs, rollouts
and Prometheus.  Handlers return nothing, so kopf writes nothing to status;
its progress lives in annotations.

Nothing registers at import: :func:`register` adds the handlers to a registry
that ``driftloop.__main__`` hands to kopf, with the :class:`Services` built once
there passed through kopf's ``memo``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from driftloop import conditions, metrics
from driftloop.api import (
    ALL_KINDS,
    DATASET,
    DEPLOYMENT,
    GROUP,
    MODEL_VERSION,
    TRAINING_RUN,
    VERSION,
    KindInfo,
)
from driftloop.client import ConflictError, CrdCache, KubeClient
from driftloop.config import OperatorConfig
from driftloop.reconcilers import (
    Context,
    Reconciler,
    reconcile_dataset,
    reconcile_deployment,
    reconcile_model_version,
    reconcile_training_run,
)

log = logging.getLogger("driftloop")

#: How long the operator waits at start for its CRDs when it may not discover them.
CRD_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Services:
    """What every handler shares; built once in ``main`` and passed as ``memo.services``."""

    config: OperatorConfig
    kube: KubeClient
    crds: CrdCache


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add driftloop's handlers to ``registry``."""
    # A plain registry has none of kopf's implicit login handlers: log in the way the
    # official client does (in-cluster service account, else the kubeconfig).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(configure)
    poll = config.poll_interval
    _register(registry, DATASET, reconcile_dataset, poll)
    _register(registry, TRAINING_RUN, reconcile_training_run, poll)
    _register(registry, MODEL_VERSION, reconcile_model_version, poll * 6)
    _register(registry, DEPLOYMENT, reconcile_deployment, poll)


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    services: Services = memo.services
    # Our CRDs have full structural schemas: kopf keeps its bookkeeping in
    # annotations, and only our own declared status fields are written.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING  # our own Events say what happened
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
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


def run(
    kind: KindInfo,
    reconcile: Reconciler,
    body: Mapping[str, Any],
    services: Services,
    now: datetime | None = None,
) -> None:
    """One reconcile: compute the outcome, write the status diff (if any), post events."""
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
            # Conditioned on the version this reconcile read: a concurrent writer
            # (another handler of this object) wins, and we reconcile again from
            # the newer object.
            ctx.kube.patch_status(
                kind, meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )
        except ConflictError as error:
            metrics.RECONCILES.labels(kind.kind, "conflict").inc()
            raise kopf.TemporaryError(str(error), delay=1) from error
    metrics.RECONCILES.labels(kind.kind, "ok").inc()
    metrics.PHASES.set(kind.kind, meta["uid"], outcome.phase)
    for event in outcome.events:
        # kopf.event reads only apiVersion, kind and metadata: any mapping will do.
        kopf.event(
            cast(kopf.Body, body), type=event.type, reason=event.reason, message=event.message
        )
    if outcome.requeue_after is not None:
        # The status now records a step the next reconcile builds on (a TrainingRun's
        # version claim): run again soon rather than at the next poll.
        raise kopf.TemporaryError(
            "the status records a step: reconciling again", delay=outcome.requeue_after
        )


def _register(
    registry: kopf.OperatorRegistry, kind: KindInfo, reconcile: Reconciler, interval: float
) -> None:
    resource = (GROUP, VERSION, kind.plural)

    def handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        run(kind, reconcile, body, memo.services)

    def forget(body: kopf.Body, **_: Any) -> None:
        metrics.PHASES.set(kind.kind, body.metadata.uid or "", None)

    name = kind.singular
    kopf.on.create(*resource, id=f"{name}-create", registry=registry)(handler)
    kopf.on.resume(*resource, id=f"{name}-resume", registry=registry)(handler)
    kopf.on.update(*resource, id=f"{name}-update", registry=registry)(handler)
    kopf.timer(*resource, id=f"{name}-poll", interval=interval, idle=None, registry=registry)(
        handler
    )
    # Children go with their owner references.  (kopf still puts a finalizer on
    # objects with timers, so that it can stop them before the object goes.)
    kopf.on.delete(*resource, id=f"{name}-delete", optional=True, registry=registry)(forget)
