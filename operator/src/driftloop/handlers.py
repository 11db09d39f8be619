"""kopf handlers: thin wiring of reconcilers to events and timers.

Every kind is reconciled level-based by one function: on create, on resume
(operator start), on any change, and on a timer that follows Jobs, rollouts
and Prometheus.  Handlers return nothing, so kopf writes nothing to status;
its progress lives in annotations.
"""

from __future__ import annotations

import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any

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
from driftloop.config import OperatorConfig
from driftloop.kube import ConflictError, Kube, load_config
from driftloop.reconcilers import (
    Context,
    Reconciler,
    reconcile_dataset,
    reconcile_deployment,
    reconcile_model_version,
    reconcile_training_run,
)

log = logging.getLogger("driftloop")
_state: dict[str, Any] = {}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = OperatorConfig.from_env()
    load_config()
    _state["config"] = config
    _state["kube"] = Kube()
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
        _wait_for_crds(_state["kube"], timeout=CRD_WAIT_SECONDS)
    log.info("driftloop operator configured: %s", config)


CRD_WAIT_SECONDS = 120.0


def _wait_for_crds(kube: Kube, timeout: float) -> None:
    names = [kind.crd_name for kind in ALL_KINDS]
    deadline = time.monotonic() + timeout
    while missing := [name for name in names if not kube.crd_established(name)]:
        if time.monotonic() > deadline:
            raise kopf.PermanentError(
                f"CustomResourceDefinitions not established after {timeout:.0f}s: "
                f"{', '.join(missing)}; install crds/ or the chart with crds.enabled=true"
            )
        log.info("waiting for CustomResourceDefinitions: %s", ", ".join(missing))
        time.sleep(2)


def _run(kind: KindInfo, reconcile: Reconciler, body: kopf.Body) -> None:
    ctx = Context(_state["kube"], _state["config"], datetime.now(UTC))
    obj = _plain(body)
    started = time.perf_counter()
    try:
        outcome = reconcile(ctx, obj)
    except kopf.TemporaryError:
        metrics.RECONCILES.labels(kind.kind, "retry").inc()
        raise
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
            # (another handler of this object, the Deployment reconciler rejecting a
            # ModelVersion) wins, and we reconcile again from the newer object.
            ctx.kube.patch_status(
                kind, meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )
        except ConflictError as error:
            metrics.RECONCILES.labels(kind.kind, "conflict").inc()
            raise kopf.TemporaryError(str(error), delay=1) from error
    metrics.RECONCILES.labels(kind.kind, "ok").inc()
    metrics.PHASES.set(kind.kind, meta["uid"], outcome.phase)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A private deep copy: reconcilers may annotate what they read."""
    return copy.deepcopy(dict(body))


def _register(kind: KindInfo, reconcile: Reconciler, interval: float) -> None:
    resource = (GROUP, VERSION, kind.plural)

    def handler(body: kopf.Body, **_: Any) -> None:
        _run(kind, reconcile, body)

    def forget(body: kopf.Body, **_: Any) -> None:
        metrics.PHASES.set(kind.kind, body.metadata.uid or "", None)

    kopf.on.create(*resource, id=f"{kind.singular}-create")(handler)
    kopf.on.resume(*resource, id=f"{kind.singular}-resume")(handler)
    kopf.on.update(*resource, id=f"{kind.singular}-update")(handler)
    kopf.timer(*resource, id=f"{kind.singular}-poll", interval=interval, idle=None)(handler)
    # Children go with their owner references.  (kopf still puts a finalizer on
    # objects with timers, so that it can stop them before the object goes.)
    kopf.on.delete(*resource, id=f"{kind.singular}-delete", optional=True)(forget)


_POLL = OperatorConfig.from_env().poll_interval
_register(DATASET, reconcile_dataset, _POLL)
_register(TRAINING_RUN, reconcile_training_run, _POLL)
_register(MODEL_VERSION, reconcile_model_version, _POLL * 6)
_register(DEPLOYMENT, reconcile_deployment, _POLL)
