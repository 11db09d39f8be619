"""Helpers for the Deployment and drift table tests, on top of :mod:`.harness`.

A case starts from seeded objects, optionally plays the first rollout to the end
(:func:`serve`), then changes the world (:func:`add`, :func:`edit_spec`, ...) and
runs the one reconcile under test with the fake's write log cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from driftloop import conditions
from driftloop.api import API_VERSION, APPROVAL_ANNOTATION, DEPLOYMENT
from driftloop.fake import FakeKube
from driftloop.reconcilers import Outcome, reconcile_deployment

from .harness import NOW, NS, Prometheus, reconcile, roll_out, status_of, stuck_pod

Obj = dict[str, Any]
Change = Callable[[FakeKube], None]

DEPLOYMENT_NAME = "iris"
PREDICTOR = "iris-predictor"
URL = "http://iris-predictor.ml.svc:8080/v2/models/iris"


def stored_deployment(kube: FakeKube, name: str = DEPLOYMENT_NAME) -> dict[str, Any]:
    return kube.stored(API_VERSION, "Deployment", NS, name)


def run(
    kube: FakeKube,
    *,
    now: datetime = NOW,
    prometheus: Callable[[str, str, str | None], float] | None = None,
    **kw: Any,
) -> Outcome:
    """One reconcile of the Deployment ``iris``."""
    return reconcile(
        reconcile_deployment,
        kube,
        DEPLOYMENT,
        DEPLOYMENT_NAME,
        now=now,
        prometheus=prometheus or Prometheus(0.0),
        **kw,
    )


def serve(kube: FakeKube, replicas: int = 1) -> None:
    """Play the first rollout to the end: apply, pods ready, Serving. Forgets the writes."""
    run(kube)
    roll_out(kube, PREDICTOR, replicas)
    run(kube)
    assert conditions.is_true(status_of(kube, DEPLOYMENT, DEPLOYMENT_NAME)), "setup: not serving"
    kube.writes.clear()


def deployment_status(kube: FakeKube) -> Obj:
    return status_of(kube, DEPLOYMENT, DEPLOYMENT_NAME)


def conditions_of(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{type: (status, reason)} of every condition."""
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def message_of(status: Mapping[str, Any], type_: str) -> str:
    return str((conditions.get_condition(status, type_) or {}).get("message", ""))


# -------------------------------------------------------------------- changes


def add(*objects: Obj) -> Change:
    def change(kube: FakeKube) -> None:
        for obj in objects:
            kube.add(obj)

    return change


def edit_spec(**spec: Any) -> Change:
    """The user edits the Deployment's spec (top-level keys replaced)."""

    def change(kube: FakeKube) -> None:
        stored = stored_deployment(kube)
        stored["spec"] = {**stored["spec"], **spec}
        stored["metadata"]["generation"] += 1

    return change


def set_status(**fields: Any) -> Change:
    """Fields of the Deployment's status as an earlier reconcile left them."""

    def change(kube: FakeKube) -> None:
        kube.update_status(stored_deployment(kube), **fields)

    return change


def approve(name: str, value: str = "approved") -> Change:
    """The user's ``driftloop.dev/approval`` annotation on a ModelVersion."""

    def change(kube: FakeKube) -> None:
        stored = kube.stored(API_VERSION, "ModelVersion", NS, name)
        stored["metadata"].setdefault("annotations", {})[APPROVAL_ANNOTATION] = value

    return change


def mark(name: str, approval: str) -> Change:
    """The ModelVersion reconciler's verdict (``status.approval``) on a version."""

    def change(kube: FakeKube) -> None:
        kube.update_status(kube.stored(API_VERSION, "ModelVersion", NS, name), approval=approval)

    return change


def pods_not_ready(replicas: int = 1) -> Change:
    def change(kube: FakeKube) -> None:
        roll_out(kube, PREDICTOR, replicas, ready=False)

    return change


def predictor_pod(version: int, **problem: Any) -> Obj:
    """A predictor pod of model version ``version`` that cannot run (see ``stuck_pod``)."""
    labels = {
        "app.kubernetes.io/instance": DEPLOYMENT_NAME,
        "app.kubernetes.io/component": "predictor",
        "driftloop.dev/model-version": str(version),
    }
    return stuck_pod(f"{PREDICTOR}-{version}-abcde", labels, container="server", **problem)


def applied(kube: FakeKube) -> None:
    """A first reconcile applied the predictor (its writes forgotten)."""
    run(kube)
    kube.writes.clear()


def replica_failure(message: str) -> Change:
    """The Deployment controller's ReplicaFailure: the API server refused a pod."""

    def change(kube: FakeKube) -> None:
        predictor = kube.get_deployment(NS, PREDICTOR)
        assert predictor is not None, "the predictor was never applied"
        condition = {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": f'pods "{PREDICTOR}-5f7c9-x2" is forbidden: {message}',
        }
        kube.update_status(predictor, conditions=[condition])

    return change


def crd(name: str) -> Change:
    def change(kube: FakeKube) -> None:
        kube.crds.add(name)

    return change


def steps(*changes: Change) -> Change:
    def change(kube: FakeKube) -> None:
        for each in changes:
            each(kube)

    return change


def nothing(kube: FakeKube) -> None:
    """No change between the setup and the reconcile under test."""
