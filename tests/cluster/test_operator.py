"""The operator against a real cluster: real Jobs, real pods, real HTTP.

The operator runs as a subprocess (``python -m driftloop``) watching the test
namespace; training and serving run the runtime image on the real kubelet.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from driftloop_testkit.argocd import check_health
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import (
    dataset_manifest,
    deployment_manifest,
    iris_csv,
    model_version_manifest,
    training_run_manifest,
)
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    create_cr,
    get_cr,
    profile_jobs,
    ready_predictor_url,
    wait_cr,
)
from driftloop_testkit.scenarios import (
    has_reason,
    in_phase,
    iris_flow,
    is_ready,
    new_version,
    ready_dataset,
    train_then_serve,
    verified_version,
)
from driftloop_testkit.traffic import infer

pytestmark = pytest.mark.cluster


def _metrics(operator: OperatorProcess) -> str:
    return requests.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text


def _operator_metric(operator: OperatorProcess, series: str) -> float:
    for line in _metrics(operator).splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_happy_path_data_to_prediction(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    # What a user applies, before the operator has seen it.
    for manifest in iris_flow():
        check_health(manifest, "no-status", "Progressing")
    served = train_then_serve(custom, namespace)
    dataset, run, mv = served.dataset, served.run, served.model_version
    check_health(dataset, "ready", "Healthy")
    check_health(run, "succeeded", "Healthy")
    check_health(mv, "approved", "Healthy")
    check_health(served.deployment, "serving", "Healthy")
    assert dataset["status"]["rows"] == 150
    assert dataset["status"]["columns"] == 5
    assert dataset["status"]["version"].startswith("sha256:")

    assert run["status"]["modelVersion"] == "iris-v1"
    assert run["status"]["metrics"]["accuracy"] > 0.7
    assert run["status"]["datasetDigest"] == dataset["status"]["version"]

    assert mv["spec"]["version"] == 1
    assert mv["spec"]["lineage"]["trainingRun"] == "iris-1"
    assert "ownerReferences" not in mv["metadata"]

    assert served.deployment["status"]["url"].endswith("/v2/models/iris")
    # A server loaded it after checking its digest.
    verified_version(custom, namespace)

    # A predictor pod is ready now (timeout=0: the Deployment is Ready, so no waiting).
    url = ready_predictor_url(kubectl, namespace, "iris", 1, timeout=0)
    response = infer(url, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["setosa", "virginica"]
    assert requests.post(url, json={"inputs": 3}, timeout=10).status_code == 400

    # The operator's own metrics; a settled object costs no more status PATCHes.
    reconciles = 'driftloop_operator_reconciles_total{kind="Dataset",result="ok"}'
    patches = 'driftloop_operator_status_patches_total{kind="Dataset"}'
    assert 'driftloop_operator_objects{kind="Deployment",phase="Serving"} 1.0' in _metrics(operator)
    seen, before = _operator_metric(operator, reconciles), _operator_metric(operator, patches)
    for touch in ("1", "2"):  # an event that changes nothing the status reflects
        kubectl("annotate", "--overwrite", "dataset/iris", "-n", namespace, f"touched={touch}")
        wait_for(
            lambda seen=seen: _operator_metric(operator, reconciles) > seen,
            timeout=60,
            what="a Dataset reconcile after the annotation",
        )
        seen = _operator_metric(operator, reconciles)
    assert _operator_metric(operator, patches) == before

    # Deleting the Deployment CR garbage-collects the serving Deployment and Service.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "deployments", "iris")
    wait_for(
        lambda: (
            not kubectl(
                "get",
                "deployments.apps,services",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/instance=iris",
                "-o",
                "name",
            ).stdout.strip()
        ),
        timeout=120,
        what="children garbage-collected",
    )
    # The registry entry outlives everything.
    assert get_cr(custom, namespace, "ModelVersion", "iris-v1") is not None


def test_failures_are_conditions_with_reasons(
    operator: OperatorProcess, custom: Any, namespace: str, stage: Any
) -> None:
    # A run whose dataset does not exist waits, it does not crash-loop.
    create_cr(custom, namespace, training_run_manifest("orphan", "missing"))
    orphan = wait_cr(custom, namespace, "TrainingRun", "orphan", has_reason("DatasetNotFound"))
    assert orphan["status"]["phase"] == "Pending"
    check_health(orphan, "dataset-not-found", "Progressing")

    # Bad data fails the Dataset with the rule and column that failed.
    stage("data/nulls.csv", iris_csv(nulls=30))
    create_cr(
        custom, namespace, dataset_manifest("nulls", "/artifacts/data/nulls.csv", maxNullRatio=0.05)
    )
    bad = wait_cr(custom, namespace, "Dataset", "nulls", has_reason("TooManyMissing"), timeout=300)
    assert "maxNullRatio" in condition(bad)["message"]
    assert "sepal_length" in condition(bad)["message"]
    check_health(bad, "validation-failed", "Degraded")
    waiting = training_run_manifest("on-bad-data", "nulls")
    create_cr(custom, namespace, waiting)
    on_bad = wait_cr(custom, namespace, "TrainingRun", "on-bad-data", has_reason("DatasetNotReady"))
    check_health(on_bad, "dataset-not-ready", "Progressing")

    # A pinned version that does not exist.
    create_cr(custom, namespace, deployment_manifest("pinned", "nothing", version=7))
    pinned = wait_cr(custom, namespace, "Deployment", "pinned", has_reason("ModelVersionNotFound"))
    check_health(pinned, "model-version-not-found", "Progressing")

    # A version whose pods never become ready, with nothing to roll back to.
    ghost_version = model_version_manifest("ghost-v1", model="ghost")
    ghost_version["metadata"]["labels"] = {"driftloop.dev/model": "ghost"}
    check_health(ghost_version, "no-status", "Progressing")
    create_cr(custom, namespace, ghost_version)
    create_cr(
        custom,
        namespace,
        deployment_manifest("ghost", "ghost", version=1, promotion={"rolloutDeadline": "15s"}),
    )
    ghost = wait_cr(
        custom, namespace, "Deployment", "ghost", has_reason("RolloutFailed"), timeout=180
    )
    check_health(ghost, "rollout-failed", "Degraded")

    # Hyperparameters the estimator does not take fail the run, once, with the reason.
    stage("data/iris.csv", iris_csv())
    ready_dataset(custom, namespace)
    bad_params = training_run_manifest("bad-params", "iris")
    bad_params["spec"]["estimator"]["hyperparameters"] = {"n_trees": 3}
    create_cr(custom, namespace, bad_params)
    failed = wait_cr(
        custom, namespace, "TrainingRun", "bad-params", in_phase("Failed"), timeout=300
    )
    assert failed["status"]["failureReason"] == "InvalidHyperparameters"
    assert "n_trees" in failed["status"]["failureMessage"]
    check_health(failed, "failed", "Degraded")


def test_dataset_refresh_records_new_versions_and_drops_old_profiles(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    first = ready_dataset(custom, namespace, refresh_interval="15s")["status"]

    stage("data/iris.csv", iris_csv(shift=0.5, seed=1))  # the source changes upstream
    second = new_version(custom, namespace, first["version"])["status"]
    assert second["phase"] == "Ready"
    assert [h["digest"] for h in second["history"][:2]] == [second["version"], first["version"]]
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "reason=NewVersion"
    )["items"]
    assert any(second["version"] in e["message"] for e in events)

    # Refreshes that find the same content add no version; superseded profile Jobs go.
    def superseded_gone() -> bool:
        jobs = profile_jobs(kubectl, namespace, "iris")
        return "iris-profile-g1" not in jobs and len(jobs) <= 2  # the current + a new refresh

    wait_for(
        superseded_gone,
        timeout=120,
        what="the first profile Job deleted",
    )
    latest = get_cr(custom, namespace, "Dataset", "iris")
    assert latest is not None
    assert latest["status"]["version"] == second["version"]
    assert len(latest["status"]["history"]) == 2


def test_restart_mid_training_creates_no_duplicates(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv(repeat=20))
    ready_dataset(custom, namespace)
    create_cr(custom, namespace, training_run_manifest("iris-restart", "iris"))
    wait_cr(
        custom,
        namespace,
        "TrainingRun",
        "iris-restart",
        lambda o: o.get("status", {}).get("jobName") is not None,
    )
    operator.restart()
    wait_cr(
        custom,
        namespace,
        "TrainingRun",
        "iris-restart",
        in_phase("Succeeded"),
        timeout=600,
    )
    operator.restart()  # and once more after it finished: still nothing new
    jobs = kubectl.json(
        "get", "jobs", "-n", namespace, "-l", "driftloop.dev/training-run=iris-restart"
    )
    assert len(jobs["items"]) == 1
    wait_for(
        lambda: condition(get_cr(custom, namespace, "ModelVersion", "iris-v1")).get("status"),
        timeout=60,
    )
    versions = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")
    assert [mv["metadata"]["name"] for mv in versions["items"]] == ["iris-v1"]


def test_model_version_spec_is_immutable(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str
) -> None:
    create_cr(custom, namespace, model_version_manifest("m-v1"))
    result = kubectl(
        "patch",
        "modelversions.driftloop.dev",
        "m-v1",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"version": 2}}',
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr
    # The operator approves it (gates passed by default) without touching spec.
    mv = wait_cr(custom, namespace, "ModelVersion", "m-v1", is_ready)
    assert mv["metadata"]["generation"] == 1
