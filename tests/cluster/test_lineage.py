"""Exact lineage on a real cluster: snapshots, recorded inputs, reproducible reruns.

A run trains on the bytes its Dataset validated, even after the source file changed;
its ModelVersion records the image digest the kubelet ran and the library versions;
a rerun of the version rebuilds the same model file (same sha256), and a rerun on
another snapshot is reported as a mismatch naming the dataset digest.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import condition, create_cr, get_cr, wait_cr
from driftloop_testkit.scenarios import IRIS_SOURCE, in_phase, ready_dataset, trained

pytestmark = pytest.mark.cluster

MISSING = "sha256:" + "0" * 64


def _finished(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    return wait_cr(
        custom, namespace, "TrainingRun", name, in_phase("Succeeded", "Failed"), timeout=600
    )


def test_runs_train_on_the_validated_snapshot_and_reruns_reproduce_it(
    operator: Any, custom: Any, namespace: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    validated = ready_dataset(custom, namespace)["status"]
    first = validated["version"]
    assert validated["snapshotUri"].endswith("/snapshots/sha256/" + first.removeprefix("sha256:"))

    # The source changes after validation; the Dataset does not refresh.
    changed = iris_csv(seed=1)
    stage("data/iris.csv", changed)

    run = trained(custom, namespace, "iris-1")
    assert run["status"]["datasetDigest"] == first
    mv = get_cr(custom, namespace, "ModelVersion", "iris-v1")
    assert mv is not None
    lineage = mv["spec"]["lineage"]
    assert lineage["datasetDigest"] == first
    assert lineage["datasetSnapshot"].endswith(first.removeprefix("sha256:"))
    assert (lineage["testSize"], lineage["randomState"]) == (0.2, 0)
    assert "@sha256:" in lineage["imageDigest"] or lineage["imageDigest"].startswith("sha256:")
    assert run["status"]["imageDigest"] == lineage["imageDigest"]
    assert {"python", "scikit-learn", "numpy", "skops"} <= set(lineage["libraryVersions"])

    # A second Dataset on the changed file: another version, another snapshot.
    other = ready_dataset(custom, namespace, IRIS_SOURCE, name="iris-b")["status"]["version"]
    assert other != first

    spec = {k: v for k, v in training_run_manifest("x", "iris")["spec"].items() if k != "model"}
    rerun = training_run_manifest("iris-rerun", "iris", reproduce={"modelVersion": "iris-v1"})
    pinned = training_run_manifest(
        "iris-rerun-other",
        "iris",
        reproduce={"modelVersion": "iris-v1"},
        datasetRef={"name": "iris", "version": other},
    )
    gone = training_run_manifest(
        "iris-gone", "iris", datasetRef={"name": "iris", "version": MISSING}
    )
    assert rerun["spec"]["estimator"] == spec["estimator"]
    for manifest in (rerun, pinned, gone):
        create_cr(custom, namespace, manifest)

    same = _finished(custom, namespace, "iris-rerun")["status"]
    assert same["phase"] == "Succeeded", same
    assert same["reproduction"] == {
        "modelVersion": "iris-v1",
        "artifactMatches": True,
        "metricsMatch": True,
        "sha256": mv["spec"]["artifact"]["sha256"],
        "differences": [],
    }
    assert condition({"status": same}, "Reproduced")["reason"] == "ArtifactMatches"

    differs = _finished(custom, namespace, "iris-rerun-other")["status"]
    assert differs["phase"] == "Succeeded", differs
    assert differs["datasetDigest"] == other
    assert differs["reproduction"]["artifactMatches"] is False
    assert differs["reproduction"]["differences"] == ["datasetDigest"]
    assert condition({"status": differs}, "Reproduced")["reason"] == "ArtifactDiffers"

    missing = _finished(custom, namespace, "iris-gone")["status"]
    assert (missing["phase"], missing["failureReason"]) == ("Failed", "SnapshotMissing")
    assert MISSING in missing["failureMessage"]

    # Reruns register nothing: the model still has one version.
    versions = custom.list_namespaced_custom_object(
        "driftloop.dev", "v1alpha1", namespace, "modelversions"
    )["items"]
    assert [v["metadata"]["name"] for v in versions] == ["iris-v1"]
