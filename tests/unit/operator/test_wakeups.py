"""Which objects a change wakes: the watch-to-queue rules."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.cache import ObjectCache
from driftloop.wakeups import Key, for_child, for_resource, owner_of_child

DL = "driftloop.dev/v1alpha1"


def obj(api: str, kind: str, name: str, labels: dict[str, str] | None = None, **rest: Any) -> Any:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ml", "labels": labels or {}, "uid": name},
        **rest,
    }


def managed(component: str, **labels: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "driftloop",
        "app.kubernetes.io/component": component,
        **labels,
    }


RUN_LABELS = managed("training", **{"driftloop.dev/training-run": "r"})
PROFILE_LABELS = managed("profiling", **{"driftloop.dev/dataset": "d"})
PREDICTOR_LABELS = managed("predictor", **{"driftloop.dev/deployment": "p"})
RUN, DATASET = Key("TrainingRun", "ml", "r"), Key("Dataset", "ml", "d")
PREDICTOR = Key("Deployment", "ml", "p")


@pytest.mark.parametrize(
    ("child", "owner"),
    [
        (obj("batch/v1", "Job", "r-train", RUN_LABELS), RUN),
        (obj("v1", "Pod", "r-train-x", RUN_LABELS), RUN),
        (obj("batch/v1", "Job", "d-profile-g1", PROFILE_LABELS), DATASET),
        (obj("apps/v1", "Deployment", "p-predictor", PREDICTOR_LABELS), PREDICTOR),
        (obj("v1", "Pod", "p-predictor-x", PREDICTOR_LABELS), PREDICTOR),
        # not ours (no managed-by), or no owner name
        (obj("v1", "Pod", "stranger", {**RUN_LABELS, "app.kubernetes.io/managed-by": "x"}), None),
        (obj("v1", "Pod", "unnamed", managed("training")), None),
    ],
)
def test_children_name_their_owner_in_labels(child: Any, owner: Key | None) -> None:
    assert owner_of_child(child) == owner
    assert for_child(child, ObjectCache()) == ([owner] if owner else [])


def _event(name: str, kind: str, about: str) -> Any:
    return obj("v1", "Event", name, involvedObject={"kind": kind, "name": about, "namespace": "ml"})


def test_a_failed_create_event_wakes_the_owner_of_its_job() -> None:
    cache = _cache(obj("batch/v1", "Job", "r-train", RUN_LABELS))
    assert for_child(_event("r-train.1", "Job", "r-train"), cache) == [RUN]
    assert for_child(_event("x.1", "Pod", "r-train"), cache) == []
    assert for_child(_event("y.1", "Job", "other"), cache) == []


def _cache(*objects: Any) -> ObjectCache:
    cache = ObjectCache()
    for o in objects:
        o["metadata"].setdefault("resourceVersion", "1")
        cache.put(o)
    return cache


def test_a_dataset_wakes_the_runs_that_read_it() -> None:
    cache = _cache(
        obj(DL, "TrainingRun", "a", spec={"datasetRef": {"name": "iris"}}),
        obj(DL, "TrainingRun", "b", spec={"datasetRef": {"name": "wine"}}),
    )
    assert for_resource(obj(DL, "Dataset", "iris"), cache) == [
        Key("Dataset", "ml", "iris"),
        Key("TrainingRun", "ml", "a"),
    ]


def test_a_retraining_run_wakes_the_deployment_that_started_it() -> None:
    run = obj(DL, "TrainingRun", "r", {"driftloop.dev/deployment": "iris"})
    assert for_resource(run, ObjectCache()) == [
        Key("TrainingRun", "ml", "r"),
        Key("Deployment", "ml", "iris"),
    ]
    assert for_resource(obj(DL, "TrainingRun", "manual"), ObjectCache()) == [
        Key("TrainingRun", "ml", "manual")
    ]


def test_versions_and_deployments_of_a_model_wake_each_other() -> None:
    cache = _cache(
        obj(DL, "Deployment", "iris-prod", spec={"model": {"name": "iris"}}),
        obj(DL, "Deployment", "wine-prod", spec={"model": {"name": "wine"}}),
        obj(DL, "ModelVersion", "iris-v1", {"driftloop.dev/model": "iris"}, spec={"model": "iris"}),
        obj(DL, "ModelVersion", "wine-v1", {"driftloop.dev/model": "wine"}, spec={"model": "wine"}),
    )
    new = obj(
        DL, "ModelVersion", "iris-v2", {"driftloop.dev/model": "iris"}, spec={"model": "iris"}
    )
    assert for_resource(new, cache) == [
        Key("ModelVersion", "ml", "iris-v2"),
        Key("Deployment", "ml", "iris-prod"),
    ]
    deployment = obj(DL, "Deployment", "iris-prod", spec={"model": {"name": "iris"}})
    assert for_resource(deployment, cache) == [
        Key("Deployment", "ml", "iris-prod"),
        Key("ModelVersion", "ml", "iris-v1"),
    ]


def test_a_model_version_wakes_the_runs_reproducing_it() -> None:
    cache = _cache(
        obj(DL, "TrainingRun", "rerun", spec={"reproduce": {"modelVersion": "iris-v1"}}),
        obj(DL, "TrainingRun", "other", spec={"reproduce": {"modelVersion": "iris-v2"}}),
        obj(DL, "TrainingRun", "plain", spec={"datasetRef": {"name": "iris"}}),
    )
    version = obj(DL, "ModelVersion", "iris-v1", spec={"model": "iris"})
    assert for_resource(version, cache) == [
        Key("ModelVersion", "ml", "iris-v1"),
        Key("TrainingRun", "ml", "rerun"),
    ]
