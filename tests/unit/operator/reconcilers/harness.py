"""Table-test harness for reconcilers: objects as users and controllers write them.

A test seeds a :class:`FakeKube` with objects, runs one reconcile at a fixed
clock, and compares the outcome (status, events) and the writes the fake recorded.
Nothing here runs a controller: the test moves Jobs, pods and predictor
Deployments along with :func:`finish_job`, :func:`roll_out` and friends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop import conditions
from driftloop.api import API_VERSION, KindInfo
from driftloop.client import CrdCache
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.prometheus import PrometheusError
from driftloop.reconcilers import Context, Outcome, Reconciler

NS = "ml"
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
CONFIG = OperatorConfig(runtime_image="driftloop/runtime:test", artifact_pvc="artifacts")
Obj = dict[str, Any]


def text(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


class Prometheus:
    """Answers PromQL queries from a table; a value that is an exception is raised."""

    def __init__(self, value: float | PrometheusError | None = None) -> None:
        self.value = value
        self.queries: list[tuple[str, str, str | None]] = []

    def __call__(self, address: str, query: str, token: str | None) -> float:
        self.queries.append((address, query, token))
        if isinstance(self.value, PrometheusError):
            raise self.value
        if self.value is None:
            raise PrometheusError("EmptyResult", f"query returned no samples: {query}")
        return self.value


def reconcile(
    reconciler: Reconciler,
    kube: FakeKube,
    kind: KindInfo,
    name: str,
    *,
    now: datetime = NOW,
    config: OperatorConfig = CONFIG,
    prometheus: Callable[[str, str, str | None], float] | None = None,
) -> Outcome:
    """Reconcile the stored object once and write its status diff, as the handler does."""
    obj = kube.get(kind, NS, name)
    assert obj is not None, f"{kind.kind} {name} not seeded"
    ctx = Context(kube, config, now, CrdCache(kube), prometheus or Prometheus())
    outcome = reconciler(ctx, obj)
    patch = conditions.status_patch(obj.get("status") or {}, outcome.status)
    if patch:
        meta = obj["metadata"]
        kube.patch_status(kind, NS, name, patch, meta["resourceVersion"])
    return outcome


def status_of(kube: FakeKube, kind: KindInfo, name: str) -> Obj:
    return dict((kube.get(kind, NS, name) or {}).get("status") or {})


def ready(status: Mapping[str, Any], type_: str = conditions.READY) -> tuple[str, str]:
    """(status, reason) of a condition."""
    condition = conditions.get_condition(status, type_) or {}
    return condition.get("status", ""), condition.get("reason", "")


def writes(kube: FakeKube) -> list[str]:
    return [repr(w) for w in kube.writes]


def events(outcome: Outcome) -> list[tuple[str, str, str]]:
    """(type, reason, message) of each event the reconcile asks to post."""
    return [(e.type, e.reason, e.message) for e in outcome.events]


# --------------------------------------------------------------------- objects


def _custom(kind: str, name: str, spec: Obj, **meta: Any) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": f"{name}-uid", **meta},
        "spec": spec,
    }


def ready_condition(reason: str = "Validated") -> list[Obj]:
    return [
        {
            "type": "Ready",
            "status": "True",
            "reason": reason,
            "message": "",
            "lastTransitionTime": text(NOW - timedelta(hours=1)),
        }
    ]


DATASET_SPEC: Obj = {
    "source": "/artifacts/data/iris.csv",
    "features": [{"name": "sepal_length"}, {"name": "petal_width"}],
    "target": "species",
}
DIGEST = "sha256:" + "d" * 64


def dataset(name: str = "iris", *, validated: bool = False, **spec: Any) -> Obj:
    obj = _custom(
        "Dataset",
        name,
        {**DATASET_SPEC, **spec},
        generation=1,
        creationTimestamp=text(NOW - timedelta(hours=1)),
    )
    if validated:
        obj["status"] = {
            "observedGeneration": 1,
            "phase": "Ready",
            "version": DIGEST,
            "conditions": ready_condition(),
        }
    return obj


def training_run(name: str = "iris-rf", model: str = "iris", dataset_name: str = "iris") -> Obj:
    return _custom(
        "TrainingRun",
        name,
        {
            "model": model,
            "datasetRef": {"name": dataset_name},
            "estimator": {"type": "RandomForestClassifier", "hyperparameters": {}},
        },
    )


def model_version(
    version: int,
    *,
    model: str = "iris",
    accuracy: float = 0.9,
    approval: str | None = "approved",
    gates_passed: bool = True,
    annotations: Mapping[str, str] | None = None,
    run_uid: str | None = None,
) -> Obj:
    labels = {"driftloop.dev/model": model, "driftloop.dev/model-version": str(version)}
    if run_uid:
        labels["driftloop.dev/training-run-uid"] = run_uid
    obj = _custom(
        "ModelVersion",
        f"{model}-v{version}",
        {
            "model": model,
            "version": version,
            "task": "classification",
            "artifact": {
                "uri": f"/artifacts/models/{model}/run-{version}",
                "sha256": f"{version:x}" * 64,
                "format": "skops",
            },
            "metrics": {"accuracy": accuracy},
            "gatesPassed": gates_passed,
        },
        labels=labels,
        annotations=dict(annotations or {}),
    )
    if approval:
        obj["status"] = {"approval": approval}
    return obj


def deployment(name: str = "iris", model: str = "iris", **spec: Any) -> Obj:
    return _custom("Deployment", name, {"model": {"name": model}, **spec}, generation=1)


# ------------------------------------------------------------ controllers' work


def pod_of_job(job: str, container: str, message: Mapping[str, Any] | str | None) -> Obj:
    terminated: Obj = {"exitCode": 0, "finishedAt": text(NOW)}
    if message is not None:
        terminated["message"] = message if isinstance(message, str) else json.dumps(message)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-abcde", "namespace": NS, "labels": {"job-name": job}},
        "status": {"containerStatuses": [{"name": container, "state": {"terminated": terminated}}]},
    }


def pod_status(
    *,
    phase: str = "Pending",
    waiting: tuple[str, str] | None = None,
    last: Obj | None = None,
    unschedulable: str | None = None,
    container: str = "train",
    init: bool = False,
) -> Obj:
    """A pod's status as the kubelet and scheduler write it: one container waiting for
    ``waiting`` = (reason, message), after the termination ``last``; or unschedulable."""
    status: Obj = {"phase": phase}
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        container_status: Obj = {"name": container, "state": state}
        if last is not None:
            container_status["lastState"] = {"terminated": last}
        status["initContainerStatuses" if init else "containerStatuses"] = [container_status]
    if unschedulable is not None:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    return status


def stuck_pod(
    name: str,
    labels: Mapping[str, str],
    *,
    waiting: tuple[str, str] | None = None,
    unschedulable: str | None = None,
    exited: int | None = None,
    container: str = "train",
) -> Obj:
    """A pod that cannot run: a container waiting for a reason (after exiting with
    ``exited``), or unschedulable."""
    restarted = waiting is not None and exited is not None
    status = pod_status(
        phase="Running" if restarted else "Pending",
        waiting=waiting,
        last={"exitCode": exited, "reason": "Error"} if restarted else None,
        unschedulable=unschedulable,
        container=container,
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
        "status": status,
    }


def failed_create(job: Obj, message: str, *, uid: str | None = None) -> Obj:
    """The Job controller's Warning event when the API server refused the Job's pod."""
    name = job["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.1", "namespace": NS},
        "involvedObject": {
            "kind": "Job",
            "name": name,
            "uid": uid or job["metadata"]["uid"],
            "namespace": NS,
        },
        "type": "Warning",
        "reason": "FailedCreate",
        "message": f'Error creating: pods "{name}-x7k2p" is forbidden: {message}',
        "lastTimestamp": text(NOW),
    }


def finish_job(
    kube: FakeKube,
    name: str,
    container: str,
    message: Mapping[str, Any] | str | None,
    *,
    succeeded: bool = True,
    failure_reason: str = "BackoffLimitExceeded",
) -> None:
    """The Job controller's part: a terminal condition, and the pod's termination message."""
    job = kube.get_job(NS, name)
    assert job is not None, f"Job {name} was never created"
    condition = (
        {"type": "Complete", "status": "True"}
        if succeeded
        else {"type": "Failed", "status": "True", "reason": failure_reason, "message": "failed"}
    )
    kube.update_status(
        job,
        conditions=[condition],
        startTime=text(NOW),
        completionTime=text(NOW) if succeeded else None,
    )
    kube.add(pod_of_job(name, container, message))


def roll_out(kube: FakeKube, name: str, replicas: int = 1, *, ready: bool = True) -> None:
    """The Deployment controller's part: the latest template's pods (not) ready."""
    predictor = kube.get_deployment(NS, name)
    assert predictor is not None, f"predictor {name} was never applied"
    count = replicas if ready else 0
    kube.update_status(
        predictor,
        observedGeneration=predictor["metadata"]["generation"],
        replicas=replicas,
        updatedReplicas=replicas,
        readyReplicas=count,
        availableReplicas=count,
    )


def artifact_store(kind: str = "pvc") -> Obj:
    if kind == "pvc":
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CONFIG.artifact_pvc, "namespace": NS},
        }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": kind, "namespace": NS},
        "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"},
    }


def seeded(*objects: Obj, extra: Sequence[Obj] = ()) -> FakeKube:
    return FakeKube([*objects, *extra], now=text(NOW))
