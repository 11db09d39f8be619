"""The flows the cluster tests, the e2e tests, the demo and the benchmarks repeat.

Each step creates objects with the ``custom`` API (a ``CustomObjectsApi``) in one
namespace, waits for the operator to act and returns what it waited for, so the caller
asserts on it:

    stage("data/iris.csv", iris_csv())
    served = train_then_serve(custom, namespace)   # Dataset -> TrainingRun -> ModelVersion
    assert served.run["status"]["metrics"]["accuracy"] > 0.7   # -> Deployment serving v1

The steps alone: :func:`ready_dataset`, :func:`trained`, :func:`approved_version`,
:func:`serve`, :func:`verified_version` (and :func:`first_version`, the first three).
:func:`create_and_serve` creates the example flow's objects at once, as
``kubectl apply -f examples/`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftloop_testkit.data import dataset_manifest, deployment_manifest, training_run_manifest
from driftloop_testkit.driftloop import GROUP, VERSION, condition, create_cr, wait_cr

#: Where ``stage("data/iris.csv", ...)`` (and ``stage_file``) put the data set.
IRIS_SOURCE = "/artifacts/data/iris.csv"

Predicate = Callable[[dict[str, Any]], bool]


# ---------------------------------------------------------------------------
# predicates on our objects (for wait_cr)
# ---------------------------------------------------------------------------
def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True, reported for the object's current generation."""
    return (
        condition(obj).get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    )


def has_reason(reason: str, type_: str = "Ready") -> Predicate:
    """The ``type_`` condition's reason is ``reason``."""
    return lambda obj: condition(obj, type_).get("reason") == reason


def is_rolled_back(obj: dict[str, Any]) -> bool:
    """Rolled back (Promoted=RolloutFailed) and done: the failed version's pods are gone
    and the previous version is Ready again (until then Ready=False says which pods the
    rollback waits for, as ``kubectl rollout status`` does)."""
    return has_reason("RolloutFailed", "Promoted")(obj) and is_ready(obj)


def in_phase(*phases: str) -> Predicate:
    """``status.phase`` is one of ``phases``."""
    return lambda obj: (obj.get("status") or {}).get("phase") in phases


def is_approved(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("approval") == "approved"


def is_serving(version: int) -> Predicate:
    """A Deployment Ready=True and serving ``version``."""

    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return status.get("servingVersion") == version and condition(obj).get("status") == "True"

    return check


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------
def ready_dataset(
    custom: Any,
    namespace: str,
    source: str = IRIS_SOURCE,
    name: str = "iris",
    timeout: float = 300,
    **manifest: Any,
) -> dict[str, Any]:
    """Create the Dataset (:func:`dataset_manifest` with ``manifest``); wait until Ready."""
    create_cr(custom, namespace, dataset_manifest(name, source, **manifest))
    return wait_cr(custom, namespace, "Dataset", name, is_ready, timeout=timeout)


def new_version(
    custom: Any, namespace: str, previous: str, name: str = "iris", timeout: float = 300
) -> dict[str, Any]:
    """Wait until the Dataset's ``status.version`` is a version other than ``previous``."""
    return wait_cr(
        custom,
        namespace,
        "Dataset",
        name,
        lambda o: o.get("status", {}).get("version") not in (None, previous),
        timeout=timeout,
    )


def trained(
    custom: Any,
    namespace: str,
    name: str = "iris-1",
    dataset: str = "iris",
    timeout: float = 600,
    **spec: Any,
) -> dict[str, Any]:
    """Create the TrainingRun (:func:`training_run_manifest`); wait until it Succeeded
    (a Failed run fails at once, with its reason)."""
    create_cr(custom, namespace, training_run_manifest(name, dataset, **spec))
    run = wait_cr(
        custom, namespace, "TrainingRun", name, in_phase("Succeeded", "Failed"), timeout=timeout
    )
    assert run["status"]["phase"] == "Succeeded", f"TrainingRun {name}: {run['status']}"
    return run


def approved_version(
    custom: Any, namespace: str, name: str = "iris-v1", timeout: float = 300
) -> dict[str, Any]:
    """Wait until the operator approved the ModelVersion ``name``."""
    return wait_cr(custom, namespace, "ModelVersion", name, is_approved, timeout=timeout)


def verified_version(
    custom: Any, namespace: str, name: str = "iris-v1", timeout: float = 300
) -> dict[str, Any]:
    """Wait until a model server reported ModelVersion ``name``'s artifact verified (it
    loaded the artifact after checking its digest)."""
    return wait_cr(
        custom,
        namespace,
        "ModelVersion",
        name,
        lambda o: (o.get("status") or {}).get("artifactVerified") is True,
        timeout=timeout,
    )


def serve(
    custom: Any,
    namespace: str,
    manifest: dict[str, Any] | None = None,
    version: int = 1,
    timeout: float = 300,
) -> dict[str, Any]:
    """Create the Deployment (default: iris from the latestApproved channel); wait until it
    serves ``version``, Ready for its current generation."""
    manifest = manifest or deployment_manifest(channel="latestApproved")
    create_cr(custom, namespace, manifest)
    serving = is_serving(version)
    return wait_cr(
        custom,
        namespace,
        "Deployment",
        manifest["metadata"]["name"],
        lambda o: serving(o) and is_ready(o),
        timeout=timeout,
    )


def runs_of(custom: Any, namespace: str, deployment: str) -> list[str]:
    """The names of the TrainingRuns the Deployment ``deployment`` started."""
    items = custom.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "trainingruns",
        label_selector=f"driftloop.dev/deployment={deployment}",
    )["items"]
    return [r["metadata"]["name"] for r in items]


@dataclass(frozen=True)
class Trained:
    """What :func:`first_version` waited for (objects as read when each step was done)."""

    dataset: dict[str, Any]
    run: dict[str, Any]
    model_version: dict[str, Any]


@dataclass(frozen=True)
class Served(Trained):
    """What :func:`train_then_serve` waited for; ``deployment`` serves version 1."""

    deployment: dict[str, Any]


def first_version(custom: Any, namespace: str, source: str = IRIS_SOURCE) -> Trained:
    """Dataset iris at ``source`` Ready -> TrainingRun iris-1 Succeeded -> iris-v1 approved."""
    dataset = ready_dataset(custom, namespace, source)
    run = trained(custom, namespace)
    return Trained(dataset, run, approved_version(custom, namespace))


def train_then_serve(
    custom: Any,
    namespace: str,
    source: str = IRIS_SOURCE,
    deployment: dict[str, Any] | None = None,
) -> Served:
    """:func:`first_version`, then :func:`serve` it with ``deployment`` (default: iris
    from the latestApproved channel)."""
    first = first_version(custom, namespace, source)
    served = serve(custom, namespace, deployment)
    return Served(first.dataset, first.run, first.model_version, served)


def iris_flow(source: str = IRIS_SOURCE, **dataset: Any) -> list[dict[str, Any]]:
    """The example flow's objects: Dataset iris (``dataset``: more of its manifest),
    TrainingRun iris-1 and a Deployment iris of the model's default channel."""
    return [
        dataset_manifest("iris", source, **dataset),
        training_run_manifest("iris-1", "iris"),
        deployment_manifest(),
    ]


def create_and_serve(
    custom: Any,
    namespace: str,
    manifests: list[dict[str, Any]],
    deployment: str = "iris",
    version: int = 1,
    timeout: float = 600,
) -> dict[str, Any]:
    """Create ``manifests`` all at once; wait until Deployment ``deployment`` serves
    ``version``."""
    for manifest in manifests:
        create_cr(custom, namespace, manifest)
    return wait_cr(
        custom, namespace, "Deployment", deployment, is_serving(version), timeout=timeout
    )
