"""The whole loop: data -> train -> serve -> drift (real Prometheus) -> retrain -> promote.

Plus the two ways a new version can fail: the promotion policy rejects it, or its
pods never become ready and the operator rolls back to the last known good one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from driftloop_testkit.argocd import check_health
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import API_VERSION, drift_loop_deployment, iris_csv
from driftloop_testkit.driftloop import (
    OperatorProcess,
    condition,
    create_cr,
    get_cr,
    ready_predictor_url,
    wait_cr,
)
from driftloop_testkit.scenarios import (
    first_version,
    is_rolled_back,
    is_serving,
    runs_of,
    serve,
)
from driftloop_testkit.traffic import scraped, send

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def _first_version(custom: Any, namespace: str, stage: Any) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)


def test_drift_retrains_and_promotes(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    _first_version(custom, namespace, stage)
    serve(
        custom,
        namespace,
        drift_loop_deployment(
            prometheus=prometheus,
            triggers=[{"name": "drift", "threshold": 0.25, "for": "6s"}],
        ),
    )
    url = ready_predictor_url(kubectl, namespace, "iris", 1)
    scraped(prometheus, namespace, "iris")

    # Traffic like the training data: the drift score stays low, nothing retrains.
    send(url, batches=60, shift=0.0)
    observed = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: any(d.get("value") is not None for d in o["status"].get("drift", [])),
        timeout=120,
        what="a drift reading from Prometheus",
    )
    reading = observed["status"]["drift"][0]
    assert reading["value"] < 0.25, reading
    time.sleep(8)  # longer than `for`: a low reading must not fire
    assert runs_of(custom, namespace, "iris") == []

    # The world shifts: new data lands in the store and live inputs move with it.
    stage("data/iris.csv", iris_csv(shift=2.5, seed=1))
    started = time.monotonic()
    run_names: list[str] = []
    while not run_names and time.monotonic() - started < 180:
        send(url, batches=20, shift=2.5)
        run_names = runs_of(custom, namespace, "iris")
    assert len(run_names) == 1, "drift did not start a retraining run"
    deployment = get_cr(custom, namespace, "Deployment", "iris")
    assert deployment is not None
    history = deployment["status"]["retrainHistory"]
    assert history[0]["trainingRun"] == run_names[0]
    assert history[0]["value"] > 0.25
    assert condition(deployment, "Retraining")["reason"] == "DriftDetected"

    # The retrained version passes the policy and replaces version 1 with no downtime.
    promoted = wait_cr(custom, namespace, "Deployment", "iris", is_serving(2), timeout=600)
    assert promoted["status"]["previousVersion"] == 1
    new_url = ready_predictor_url(kubectl, namespace, "iris", 2)
    answers = send(new_url, batches=5, shift=2.5)
    assert {a["model_version"] for a in answers} == {"2"}
    mv2 = get_cr(custom, namespace, "ModelVersion", "iris-v2")
    assert mv2 is not None
    assert mv2["spec"]["lineage"]["trainingRun"] == run_names[0]
    # Exact lineage: the run trained on the snapshot of the version the Dataset validated,
    # not on the file that landed since (it is used once the Dataset validates it).
    assert (
        mv2["spec"]["lineage"]["datasetDigest"]
        == get_cr(custom, namespace, "ModelVersion", "iris-v1")["spec"]["lineage"]["datasetDigest"]
    )  # type: ignore[index]

    # Drift against the new version continues; the cooldown allows no second run.
    send(new_url, batches=80, shift=5.0)
    wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: condition(o, "Retraining").get("reason") == "Cooldown",
        timeout=120,
    )
    assert len(runs_of(custom, namespace, "iris")) == 1


def test_the_calibrated_default_trigger_stays_calm_then_fires(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    """A drift trigger without threshold: the pooled PSI relative to each feature's
    threshold calibrated at training time (window 200 rows, 1% false alarms), firing
    above 1.  Undrifted traffic reads below 1 and starts nothing; shifted traffic
    starts a run.  (Stops there: the promotion is the test above.)"""
    _first_version(custom, namespace, stage)
    serve(
        custom,
        namespace,
        drift_loop_deployment(prometheus=prometheus, triggers=[{"name": "drift", "for": "6s"}]),
    )
    url = ready_predictor_url(kubectl, namespace, "iris", 1)
    scraped(prometheus, namespace, "iris")

    send(url, batches=60, shift=0.0)
    observed = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: any(d.get("value") is not None for d in o["status"].get("drift", [])),
        timeout=120,
        what="a calibrated drift reading from Prometheus",
    )
    reading = observed["status"]["drift"][0]
    assert reading["calibrated"] is True, reading
    assert reading["threshold"] == 1.0
    assert 0 < reading["value"] < 1, reading
    time.sleep(8)  # longer than `for`: a calm reading must not fire
    assert runs_of(custom, namespace, "iris") == []

    started = time.monotonic()
    run_names: list[str] = []
    while not run_names and time.monotonic() - started < 120:
        send(url, batches=20, shift=1.0)
        run_names = runs_of(custom, namespace, "iris")
    assert len(run_names) == 1, "calibrated drift did not start a retraining run"
    deployment = get_cr(custom, namespace, "Deployment", "iris")
    assert deployment is not None
    assert deployment["status"]["retrainHistory"][0]["value"] > 1.0
    assert condition(deployment, "Retraining")["reason"] == "DriftDetected"


def test_promotion_policy_rejects_a_worse_model(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    namespace: str,
    stage: Any,
) -> None:
    _first_version(custom, namespace, stage)
    deployment = drift_loop_deployment(
        prometheus=prometheus,
        triggers=[{"name": "always", "query": "vector(1)", "threshold": 0.5, "for": "0s"}],
    )
    # A stump cannot match the forest's accuracy: the policy must reject it.
    deployment["spec"]["retraining"]["template"]["estimator"] = {
        "type": "DecisionTreeClassifier",
        "hyperparameters": {"max_depth": 1},
    }
    deployment["spec"]["retraining"]["template"]["evaluation"] = {}
    deployment["spec"]["promotion"]["tolerance"] = 0.0
    serve(custom, namespace, deployment)
    rejected = wait_cr(
        custom,
        namespace,
        "ModelVersion",
        "iris-v2",
        lambda o: (o.get("status") or {}).get("approvalReason") == "PromotionPolicy",
        timeout=600,
    )
    assert rejected["status"]["approval"] == "rejected"
    check_health(rejected, "rejected-by-policy", "Healthy")
    still = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: condition(o, "Promoted").get("reason") == "PromotionPolicy",
    )
    assert still["status"]["servingVersion"] == 1
    assert [r["modelVersion"] for r in still["status"]["rejectedVersions"]] == ["iris-v2"]
    check_health(still, "promotion-refused", "Healthy")


def test_unready_version_rolls_back(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    _first_version(custom, namespace, stage)
    deployment = drift_loop_deployment(prometheus=prometheus, rollout_deadline="20s", enabled=False)
    serve(custom, namespace, deployment)
    url = ready_predictor_url(kubectl, namespace, "iris", 1)

    # A version whose artifact does not match its digest: the server refuses to load it.
    v1 = get_cr(custom, namespace, "ModelVersion", "iris-v1")
    assert v1 is not None
    corrupt = {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {"name": "iris-v2", "labels": {"driftloop.dev/model": "iris"}},
        "spec": {
            **v1["spec"],
            "version": 2,
            "artifact": {**v1["spec"]["artifact"], "sha256": "0" * 64},
        },
    }
    create_cr(custom, namespace, corrupt)
    rolled = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        is_rolled_back,
        timeout=300,
    )
    assert rolled["status"]["servingVersion"] == 1
    assert "rolling back to version 1" in condition(rolled, "Promoted")["message"]
    check_health(rolled, "rolled-back", "Healthy")
    v2 = wait_cr(
        custom,
        namespace,
        "ModelVersion",
        "iris-v2",
        lambda o: (o.get("status") or {}).get("approvalReason") == "RolloutFailed",
    )
    assert v2["status"]["approval"] == "rejected"
    check_health(v2, "rejected-after-rollout", "Healthy")
    # Version 1 served throughout and still does.
    answers = send(url, batches=3)
    assert {a["model_version"] for a in answers} == {"1"}
    wait_for(
        lambda: requests.post(url, json={"inputs": []}, timeout=5).status_code == 400, timeout=30
    )
