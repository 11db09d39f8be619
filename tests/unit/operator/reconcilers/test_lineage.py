"""Exact lineage: runs train on stored snapshots, record what rebuilds them, and rerun.

A TrainingRun's Job names the snapshot of the Dataset's current version (or of the
version it pins); the ModelVersion records the snapshot, split, image digest and
library versions; a run with ``reproduce`` compares its result with a ModelVersion
and registers nothing.
"""

from __future__ import annotations

import json
from typing import Any

import driftloop_contract as contract
from driftloop.api import DATASET, MODEL_VERSION, TRAINING_RUN
from driftloop.fake import FakeKube
from driftloop.reconcilers import reconcile_dataset, reconcile_training_run

from .harness import (
    CONFIG,
    DIGEST,
    Obj,
    artifact_store,
    dataset,
    events,
    finish_job,
    model_version,
    ready,
    reconcile,
    seeded,
    status_of,
    training_run,
    writes,
)

JOB = "iris-rf-train"
OTHER = "sha256:" + "e" * 64
IMAGE_ID = "docker.io/driftloop/runtime@sha256:" + "1" * 64
LIBS = {"python": "3.12.7", "scikit-learn": "1.7.2", "numpy": "2.3.0"}


def _snapshot_of(digest: str) -> str:
    return contract.snapshot_location(CONFIG.artifact_root, digest)


def _validated(**spec: Any) -> Obj:
    ds = dataset(validated=True, **spec)
    ds["status"]["snapshotUri"] = "file://" + _snapshot_of(DIGEST)
    return ds


def _run(*, version: str | None = None, reproduce: str | None = None, **spec: Any) -> Obj:
    run = training_run()
    if version:
        run["spec"]["datasetRef"]["version"] = version
    if reproduce:
        run["spec"]["reproduce"] = {"modelVersion": reproduce}
    run["spec"].update(spec)
    return run


def _request(kube: FakeKube) -> contract.TrainRequest:
    job = kube.get_job("ml", JOB)
    assert job is not None
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    value = next(v["value"] for v in env if v["name"] == contract.ENV_REQUEST)
    return contract.TrainRequest.model_validate_json(value)


def _trained(sha: str = "a" * 64, digest: str = DIGEST, **extra: Any) -> Obj:
    return {
        "ok": True,
        "artifactUri": "file:///artifacts/models/iris/run",
        "sha256": sha,
        "datasetDigest": digest,
        "rows": 150,
        "task": "classification",
        "metrics": {"accuracy": 0.9},
        "gatesPassed": True,
        "libraryVersions": LIBS,
        **extra,
    }


def _finish(kube: FakeKube, result: Obj) -> None:
    finish_job(kube, JOB, "train", result)
    pod = kube.list_pods("ml", f"job-name={JOB}")[0]
    (container,) = pod["status"]["containerStatuses"]
    kube.update_status(pod, containerStatuses=[{**container, "imageID": IMAGE_ID}])


def test_the_profile_job_keeps_snapshots_and_takes_the_datasets_resources() -> None:
    resources = {"requests": {"memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    kube = seeded(dataset(resources=resources), artifact_store())
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    (job,) = kube.list_jobs("ml", "")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == resources
    request = json.loads(
        next(e["value"] for e in container["env"] if e["name"] == "DRIFTLOOP_REQUEST")
    )
    assert request["snapshotRoot"] == "/artifacts/snapshots"


def test_the_dataset_records_where_its_version_is_stored() -> None:
    kube = seeded(dataset(), artifact_store())
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    (job,) = kube.list_jobs("ml", "")
    uri = "file://" + _snapshot_of(DIGEST)
    result = {"ok": True, "digest": DIGEST, "rows": 150, "columns": 3, "snapshotUri": uri}
    finish_job(kube, job["metadata"]["name"], "profile", result)
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    status = status_of(kube, DATASET, "iris")
    assert (status["version"], status["snapshotUri"]) == (DIGEST, uri)


def test_a_run_trains_on_the_snapshot_of_the_current_version() -> None:
    kube = seeded(_run(), _validated())
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    request = _request(kube)
    assert request.snapshot == contract.SnapshotRef(uri=_snapshot_of(DIGEST), digest=DIGEST)
    assert events(outcome)[0][2] == f"created training Job {JOB} on {DIGEST}"


def test_a_dataset_profiled_before_snapshots_trains_on_its_source() -> None:
    kube = seeded(_run(), dataset(validated=True))  # no snapshotUri in its status
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert _request(kube).snapshot is None


def test_a_pinned_version_is_trained_on_even_while_the_dataset_is_not_ready() -> None:
    refused = dataset()
    refused["status"] = {"phase": "Failed", "conditions": []}
    kube = seeded(_run(version=OTHER), refused)
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert _request(kube).snapshot == contract.SnapshotRef(uri=_snapshot_of(OTHER), digest=OTHER)


def test_a_pinned_version_without_a_snapshot_fails_with_its_reason() -> None:
    kube = seeded(_run(version=OTHER), _validated())
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    missing = {
        "ok": False,
        "reason": contract.REASON_SNAPSHOT_MISSING,
        "message": f"no snapshot of {OTHER}",
    }
    finish_job(kube, JOB, "train", missing, succeeded=False)
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert (outcome.phase, status["failureReason"]) == ("Failed", "SnapshotMissing")
    assert ready(status) == ("False", "SnapshotMissing")
    assert ready(status, "Stalled") == ("True", "SnapshotMissing")
    assert kube.list(MODEL_VERSION, "ml") == []


def test_a_corrupt_snapshot_fails_the_run_and_registers_nothing() -> None:
    kube = seeded(_run(), _validated())
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    corrupt = {"ok": False, "reason": contract.REASON_SNAPSHOT_CORRUPT, "message": "bad"}
    finish_job(kube, JOB, "train", corrupt, succeeded=False)
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert ready(status) == ("False", "SnapshotCorrupt")
    assert kube.list(MODEL_VERSION, "ml") == []


def test_the_model_version_records_what_rebuilds_it() -> None:
    kube = seeded(_run(evaluation={"testSize": 0.3, "randomState": 7}), _validated())
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    _finish(kube, _trained(snapshotUri=_snapshot_of(DIGEST)))
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")  # claims
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")  # registers
    (mv,) = kube.list(MODEL_VERSION, "ml")
    lineage = mv["spec"]["lineage"]
    assert lineage["datasetDigest"] == DIGEST
    assert lineage["datasetSnapshot"] == _snapshot_of(DIGEST)
    assert (lineage["testSize"], lineage["randomState"]) == (0.3, 7)
    assert lineage["imageDigest"] == IMAGE_ID
    assert lineage["libraryVersions"] == LIBS
    assert status_of(kube, TRAINING_RUN, "iris-rf")["imageDigest"] == IMAGE_ID


def _original(sha: str = "a" * 64, digest: str = DIGEST, model: str = "iris") -> Obj:
    mv = model_version(1, model=model)
    mv["spec"]["artifact"]["sha256"] = sha
    mv["spec"]["lineage"] = {
        "dataset": "iris",
        "datasetDigest": digest,
        "estimator": "RandomForestClassifier",
        "hyperparameters": {},
        "testSize": 0.2,
        "randomState": 0,
        "imageDigest": IMAGE_ID,
        "libraryVersions": LIBS,
    }
    return mv


def test_a_rerun_trains_on_the_originals_snapshot_and_reports_a_match() -> None:
    kube = seeded(_run(reproduce="iris-v1"), _validated(), _original(digest=OTHER))
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert _request(kube).snapshot == contract.SnapshotRef(uri=_snapshot_of(OTHER), digest=OTHER)
    _finish(kube, _trained(digest=OTHER))
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert outcome.phase == "Succeeded"
    assert status["reproduction"] == {
        "modelVersion": "iris-v1",
        "artifactMatches": True,
        "metricsMatch": True,
        "sha256": "a" * 64,
        "differences": [],
    }
    assert ready(status, "Reproduced") == ("True", "ArtifactMatches")
    assert [w for w in writes(kube) if "ModelVersion" in w] == []  # registers nothing


def test_a_rerun_on_another_snapshot_reports_the_mismatch_and_why() -> None:
    kube = seeded(_run(reproduce="iris-v1", version=OTHER), _validated(), _original())
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert _request(kube).snapshot == contract.SnapshotRef(uri=_snapshot_of(OTHER), digest=OTHER)
    _finish(kube, _trained(sha="b" * 64, digest=OTHER, metrics={"accuracy": 0.8}))
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert status["reproduction"]["artifactMatches"] is False
    assert status["reproduction"]["metricsMatch"] is False
    assert status["reproduction"]["differences"] == ["datasetDigest"]
    assert ready(status, "Reproduced") == ("False", "ArtifactDiffers")
    assert events(outcome)[-1][:2] == ("Warning", "ArtifactDiffers")


def test_a_rerun_waits_for_its_model_version_and_refuses_another_models() -> None:
    kube = seeded(_run(reproduce="iris-v1"), _validated())
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert outcome.phase == "Pending"
    assert ready(status_of(kube, TRAINING_RUN, "iris-rf")) == ("False", "ModelVersionNotFound")
    assert kube.get_job("ml", JOB) is None

    other = _original(model="wine")
    other["metadata"]["name"] = "iris-v1"
    kube = seeded(_run(reproduce="iris-v1"), _validated(), other)
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert outcome.phase == "Failed"
    assert ready(status_of(kube, TRAINING_RUN, "iris-rf")) == ("False", "ReproduceModelMismatch")
    assert kube.get_job("ml", JOB) is None
